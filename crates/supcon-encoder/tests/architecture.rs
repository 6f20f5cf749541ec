//! The encoders' structure: widths, parameter counts equal to the PyTorch reference's, stems,
//! input channels, the reference's initialisation, and the feature maps an image makes.

use burn::module::Module;
use burn::prelude::*;
use supcon_encoder::{Architecture, Encoder, EncoderConfig, ResidualBlock, Stem};

fn device() -> Device {
    Device::flex()
}

#[test]
fn names_widths_and_parameter_counts_match_the_reference() {
    // Entries of resnet_big.py's encoders (3 input channels) counted with PyTorch: parameters
    // plus BatchNorm running statistics, which Burn's `num_params` also counts (11,168,832
    // parameters for ResNet-18, 21,276,992 for 34, 23,500,352 for 50, 42,492,480 for 101).
    let reference = [
        (Architecture::ResNet18, 11_178_432),
        (Architecture::ResNet34, 21_294_016),
        (Architecture::ResNet50, 23_553_472),
        (Architecture::ResNet101, 42_597_824),
    ];
    for (architecture, params) in reference {
        let encoder = EncoderConfig::new(architecture).init(&device());
        assert_eq!(encoder.num_params(), params, "{}", architecture.name());
        assert_eq!(encoder.width(), architecture.width());
        assert_eq!(
            architecture.name().parse::<Architecture>().unwrap(),
            architecture
        );
        let features = encoder.forward(Tensor::zeros([2, 3, 8, 8], &device()));
        assert_eq!(features.dims(), [2, architecture.width()]);
    }
    assert!(
        "resnet152"
            .parse::<Architecture>()
            .unwrap_err()
            .to_string()
            .contains("resnet152")
    );
}

#[test]
fn small_encoder_takes_digits() {
    let encoder = EncoderConfig::new(Architecture::Small)
        .with_in_channels(1)
        .init(&device());
    // 240,608 parameters and 704 running statistics, as PyTorch counts the same network.
    assert_eq!(encoder.num_params(), 241_312);
    assert_eq!(
        encoder
            .forward(Tensor::zeros([3, 1, 28, 28], &device()))
            .dims(),
        [3, 128]
    );
}

#[test]
fn imagenet_stem_and_single_channel_inputs() {
    let encoder = EncoderConfig::new(Architecture::ResNet18)
        .with_stem(Stem::ImageNet)
        .with_in_channels(1)
        .init(&device());
    assert_eq!(
        encoder
            .forward(Tensor::zeros([1, 1, 64, 64], &device()))
            .dims(),
        [1, 512]
    );
    let Encoder::ResNet(net) = &encoder else {
        panic!("not a ResNet")
    };
    assert_eq!(net.conv1.weight.dims(), [64, 1, 7, 7]);
    assert!(net.maxpool.is_some());
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn initialisation_is_the_references() {
    let encoder = EncoderConfig::new(Architecture::ResNet18).init(&device());
    let Encoder::ResNet(net) = &encoder else {
        panic!("not a ResNet")
    };
    // Kaiming normal, fan_out, ReLU gain: std sqrt(2 / (out_channels * k * k)).
    let weights = values(net.layer3[0].clone().into_basic().conv2.weight.val());
    let std = (weights.iter().map(|w| w * w).sum::<f32>() / weights.len() as f32).sqrt();
    let want = (2.0f32 / (256.0 * 9.0)).sqrt();
    assert!((std / want - 1.0).abs() < 0.02, "std {std} vs {want}");
    assert!(values(net.bn1.gamma.val()).iter().all(|&g| g == 1.0));
    assert!(values(net.bn1.beta.val()).iter().all(|&b| b == 0.0));

    let zero = EncoderConfig::new(Architecture::ResNet50)
        .with_zero_init_residual(true)
        .init(&device());
    let Encoder::ResNet(net) = &zero else {
        panic!("not a ResNet")
    };
    for block in net.layer1.iter().chain(&net.layer4) {
        let ResidualBlock::Bottleneck(b) = block else {
            panic!("resnet50 has bottlenecks")
        };
        assert!(values(b.bn3.gamma.val()).iter().all(|&g| g == 0.0));
        assert!(values(b.bn2.gamma.val()).iter().all(|&g| g == 1.0));
    }
}

trait IntoBasic {
    fn into_basic(self) -> supcon_encoder::BasicBlock;
}

impl IntoBasic for ResidualBlock {
    fn into_basic(self) -> supcon_encoder::BasicBlock {
        match self {
            ResidualBlock::Basic(b) => b,
            ResidualBlock::Bottleneck(_) => panic!("resnet18 has basic blocks"),
        }
    }
}

/// `EncoderConfig::feature_maps` against the counts PyTorch's forward hooks give on the
/// reference architectures: the lines `python3 xtask/python/feature_maps.py` printed
/// (2026-12-02, torch 2.15): architecture, stem, channels, height, width, total, largest.
const PYTORCH_FEATURE_MAPS: &str = "\
small cifar 1 28 28 50176 25088
small cifar 3 1 1 352 128
resnet18 cifar 3 32 32 614400 65536
resnet18 cifar 1 28 28 480000 50176
resnet18 cifar 3 1 1 4800 512
resnet18 cifar 3 1000 1000 600000000 64000000
resnet34 cifar 3 32 32 1024000 65536
resnet50 cifar 3 32 32 3432448 262144
resnet101 cifar 3 17 23 2221504 100096
resnet50 imagenet 3 224 224 11314688 802816
resnet18 imagenet 3 5 3 5504 512";

#[test]
fn feature_maps_match_pytorchs_forward_hooks() {
    use supcon_encoder::FeatureMaps;
    for line in PYTORCH_FEATURE_MAPS.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [name, stem, numbers @ ..] = fields.as_slice() else {
            panic!("{line}")
        };
        let n: Vec<usize> = numbers.iter().map(|v| v.parse().unwrap()).collect();
        let stem = match *stem {
            "cifar" => Stem::Cifar,
            _ => Stem::ImageNet,
        };
        let config = EncoderConfig::new(name.parse().unwrap())
            .with_stem(stem)
            .with_in_channels(n[0]);
        let want = FeatureMaps {
            total: n[3],
            largest: n[4],
        };
        assert_eq!(config.feature_maps(n[1], n[2]), want, "{line}");
    }
}
