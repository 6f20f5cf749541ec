#![cfg(feature = "flex")]
//! The flex host kernels (this crate's `flex` feature) against Burn's own operations: the
//! convolution (`conv::conv2d`) and BatchNorm (`norm::batch_norm`) in training, values and the
//! gradients of the input and every parameter, on shapes that reach each edge of the unfolding
//! (padding on one side, strides, dilation, 1x1, one image, non-square maps).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm_train, conv2d as burn_conv2d};
use burn::tensor::ops::ConvOptions;
use supcon_encoder::conv::{conv2d, conv2d_weight_backward};
use supcon_encoder::norm::{batch_norm, batch_norm_relu};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Deterministic values in about [-1, 1], different for each `salt`.
fn pattern(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

fn assert_close(label: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{label}: lengths");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{label}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

struct ConvCase {
    batch: usize,
    channels: [usize; 2],
    kernel: [usize; 2],
    size: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// top, left, bottom, right
    padding: [usize; 4],
}

fn check_conv(case: &ConvCase) {
    let device = Device::flex().autodiff();
    let [ci, co] = case.channels;
    let [p_top, p_left, p_bottom, p_right] = case.padding;
    let conv: Conv2d = Conv2dConfig::new(case.channels, case.kernel)
        .with_stride(case.stride)
        .with_dilation(case.dilation)
        .with_padding(PaddingConfig2d::Explicit(p_top, p_left, p_bottom, p_right))
        .with_bias(false)
        .init(&device);
    let weight_values = pattern(co * ci * case.kernel[0] * case.kernel[1], 1);
    let conv = Conv2d {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(
                weight_values.clone(),
                [co, ci, case.kernel[0], case.kernel[1]],
            ),
            &device,
        )),
        ..conv
    };
    let x_shape = [case.batch, ci, case.size[0], case.size[1]];
    let x_values = pattern(x_shape.iter().product(), 2);
    let run = |fused: bool| {
        let x = Tensor::<4>::from_data(TensorData::new(x_values.clone(), x_shape), &device)
            .require_grad();
        let weight = Tensor::<4>::from_data(
            TensorData::new(
                weight_values.clone(),
                [co, ci, case.kernel[0], case.kernel[1]],
            ),
            &device,
        )
        .require_grad();
        let y = if fused {
            let conv = Conv2d {
                weight: Param::from_tensor(weight.clone()),
                ..conv.clone()
            };
            conv2d(&conv, x.clone())
        } else {
            let options = ConvOptions::new_with_padding(
                case.stride,
                [(p_top, p_bottom), (p_left, p_right)],
                case.dilation,
                1,
            );
            burn_conv2d(x.clone(), weight.clone(), None, options)
        };
        // A weighted sum, so that every output position has its own gradient.
        let probe = Tensor::<4>::from_data(
            TensorData::new(pattern(y.shape().num_elements(), 3), y.dims()),
            &device,
        );
        let grads = (y.clone() * probe).sum().backward();
        (
            values(y.inner()),
            values(x.grad(&grads).expect("input gradient")),
            values(weight.grad(&grads).expect("weight gradient")),
        )
    };
    let (y, dx, dw) = run(true);
    let (y_ref, dx_ref, dw_ref) = run(false);
    let label = format!(
        "{:?} k{:?} s{:?} d{:?} p{:?}",
        x_shape, case.kernel, case.stride, case.dilation, case.padding
    );
    assert_close(&format!("output {label}"), &y, &y_ref, 1e-5);
    assert_close(&format!("input gradient {label}"), &dx, &dx_ref, 1e-5);
    assert_close(&format!("weight gradient {label}"), &dw, &dw_ref, 1e-5);
}

#[test]
fn convolution_matches_burn_with_its_gradients() {
    let cases = [
        // The ResNet shapes in small: 3x3 s1 p1, 3x3 s2 p1, the 1x1 s2 shortcut, the 3-channel stem.
        ConvCase {
            batch: 2,
            channels: [4, 5],
            kernel: [3, 3],
            size: [6, 6],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [1, 1, 1, 1],
        },
        ConvCase {
            batch: 3,
            channels: [4, 6],
            kernel: [3, 3],
            size: [7, 8],
            stride: [2, 2],
            dilation: [1, 1],
            padding: [1, 1, 1, 1],
        },
        ConvCase {
            batch: 2,
            channels: [4, 8],
            kernel: [1, 1],
            size: [8, 8],
            stride: [2, 2],
            dilation: [1, 1],
            padding: [0, 0, 0, 0],
        },
        ConvCase {
            batch: 1,
            channels: [3, 4],
            kernel: [3, 3],
            size: [5, 5],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [1, 1, 1, 1],
        },
        // Maps of 64 positions or more, one image per product, written in place; three images
        // on two cores.
        ConvCase {
            batch: 3,
            channels: [3, 4],
            kernel: [3, 3],
            size: [10, 10],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [1, 1, 1, 1],
        },
        // 16 positions: four images per product, and a last product of fewer on each core.
        ConvCase {
            batch: 10,
            channels: [2, 3],
            kernel: [3, 3],
            size: [4, 4],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [1, 1, 1, 1],
        },
        // Uneven: padding on one side only, rectangular kernel and strides, dilation, no padding.
        ConvCase {
            batch: 2,
            channels: [2, 3],
            kernel: [3, 2],
            size: [9, 7],
            stride: [2, 3],
            dilation: [1, 2],
            padding: [2, 0, 0, 1],
        },
        ConvCase {
            batch: 2,
            channels: [3, 2],
            kernel: [5, 5],
            size: [11, 6],
            stride: [1, 1],
            dilation: [2, 1],
            padding: [0, 0, 0, 0],
        },
        // Same size from uneven padding (output position k reads input k + shift for every
        // tap): an even kernel padded after, then before; a kernel larger than the map.
        ConvCase {
            batch: 2,
            channels: [2, 3],
            kernel: [2, 2],
            size: [5, 6],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [0, 0, 1, 1],
        },
        ConvCase {
            batch: 3,
            channels: [3, 2],
            kernel: [2, 4],
            size: [4, 3],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [1, 2, 0, 1],
        },
        ConvCase {
            batch: 2,
            channels: [2, 2],
            kernel: [5, 5],
            size: [2, 3],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [2, 2, 2, 2],
        },
        // Taps wholly in the padding, wider than the map.
        ConvCase {
            batch: 2,
            channels: [2, 3],
            kernel: [7, 7],
            size: [1, 2],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [3, 3, 3, 3],
        },
        // The ImageNet stem's geometry: 7x7, stride 2, padding 3.
        ConvCase {
            batch: 2,
            channels: [3, 4],
            kernel: [7, 7],
            size: [11, 11],
            stride: [2, 2],
            dilation: [1, 1],
            padding: [3, 3, 3, 3],
        },
        // Strided and aligned (the input exactly the stride times the output: phase planes):
        // the ResNet's 3x3 stride 2 on even maps, the stem on an even map, and a stride of 2
        // down and 1 across with padding on one side.
        ConvCase {
            batch: 3,
            channels: [4, 6],
            kernel: [3, 3],
            size: [8, 6],
            stride: [2, 2],
            dilation: [1, 1],
            padding: [1, 1, 1, 1],
        },
        ConvCase {
            batch: 2,
            channels: [3, 4],
            kernel: [7, 7],
            size: [12, 12],
            stride: [2, 2],
            dilation: [1, 1],
            padding: [3, 3, 3, 3],
        },
        ConvCase {
            batch: 2,
            channels: [2, 3],
            kernel: [4, 3],
            size: [6, 5],
            stride: [2, 1],
            dilation: [1, 1],
            padding: [2, 0, 0, 2],
        },
    ];
    for case in &cases {
        check_conv(case);
    }
}

#[test]
fn batch_norm_matches_burn_with_its_gradients_and_running_statistics() {
    check_batch_norm(false);
}

/// `batch_norm_relu` against Burn's `relu(batch_norm_train(..))`: the output clamped, the
/// gradients masked where it is zero (about half the values: gamma and beta of both signs).
#[test]
fn batch_norm_relu_matches_burn_with_its_gradients_and_running_statistics() {
    check_batch_norm(true);
}

fn check_batch_norm(then_relu: bool) {
    let device = Device::flex().autodiff();
    for (shape, offset) in [
        ([3usize, 4, 5, 6], 0.0f32),
        ([2, 3, 1, 1], 5.0),
        ([1, 2, 4, 3], 100.0),
    ] {
        let channels = shape[1];
        let x_values: Vec<f32> = pattern(shape.iter().product(), 4)
            .into_iter()
            .map(|v| v * 3.0 + offset)
            .collect();
        let gamma_values = pattern(channels, 5);
        let beta_values = pattern(channels, 6);
        let probe_values = pattern(shape.iter().product(), 7);
        let run = |fused: bool| {
            let x = Tensor::<4>::from_data(TensorData::new(x_values.clone(), shape), &device)
                .require_grad();
            let gamma =
                Tensor::<1>::from_data(TensorData::new(gamma_values.clone(), [channels]), &device)
                    .require_grad();
            let beta =
                Tensor::<1>::from_data(TensorData::new(beta_values.clone(), [channels]), &device)
                    .require_grad();
            let (y, running) = if fused {
                let mut norm = BatchNormConfig::new(channels).init(&device);
                norm.gamma = Param::from_tensor(gamma.clone());
                norm.beta = Param::from_tensor(beta.clone());
                let y = if then_relu {
                    batch_norm_relu(&norm, x.clone())
                } else {
                    batch_norm(&norm, x.clone())
                };
                let running = [
                    values(norm.running_mean.value_sync()),
                    values(norm.running_var.value_sync()),
                ];
                (y, Some(running))
            } else {
                let result = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
                let y = if then_relu {
                    relu(result.output)
                } else {
                    result.output
                };
                (y, None)
            };
            let probe =
                Tensor::<4>::from_data(TensorData::new(probe_values.clone(), shape), &device);
            let grads = (y.clone() * probe).sum().backward();
            (
                values(y.inner()),
                values(x.grad(&grads).unwrap()),
                values(gamma.grad(&grads).unwrap()),
                values(beta.grad(&grads).unwrap()),
                running,
            )
        };
        let (y, dx, dgamma, dbeta, running) = run(true);
        let (y_ref, dx_ref, dgamma_ref, dbeta_ref, _) = run(false);
        if then_relu {
            let zeros = y.iter().filter(|&&v| v == 0.0).count();
            assert!(0 < zeros && zeros < y.len(), "{zeros} of {} zero", y.len());
        }
        let label = format!("{shape:?} offset {offset} relu {then_relu}");
        assert_close(&format!("output {label}"), &y, &y_ref, 1e-4);
        assert_close(&format!("input gradient {label}"), &dx, &dx_ref, 1e-4);
        assert_close(
            &format!("gamma gradient {label}"),
            &dgamma,
            &dgamma_ref,
            1e-4,
        );
        assert_close(&format!("beta gradient {label}"), &dbeta, &dbeta_ref, 1e-5);

        // The running statistics: momentum 0.1 from (0, 1), the unbiased variance.
        let [running_mean, running_var] = running.unwrap();
        let n = shape[0] * shape[2] * shape[3];
        for c in 0..channels {
            let xs: Vec<f64> = (0..shape[0])
                .flat_map(|b| {
                    let start = (b * channels + c) * shape[2] * shape[3];
                    x_values[start..start + shape[2] * shape[3]]
                        .iter()
                        .map(|&v| v as f64)
                        .collect::<Vec<_>>()
                })
                .collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let biased = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let unbiased = if n > 1 {
                biased * n as f64 / (n - 1) as f64
            } else {
                biased
            };
            assert!((running_mean[c] as f64 - 0.1 * mean).abs() < 1e-4 * (1.0 + mean.abs()));
            assert!(
                (running_var[c] as f64 - (0.9 + 0.1 * unbiased)).abs() < 1e-4 * (1.0 + unbiased)
            );
        }
    }
}

/// Without autodiff (evaluation on the inner device) the convolution is plain `conv.forward`.
#[test]
fn convolution_without_autodiff_and_with_bias_is_burns() {
    let device = Device::flex();
    let with_bias = Conv2dConfig::new([2, 3], [3, 3]).init(&device);
    let x = Tensor::<4>::from_data(
        TensorData::new(pattern(2 * 2 * 5 * 5, 8), [2, 2, 5, 5]),
        &device,
    );
    assert_close(
        "bias",
        &values(conv2d(&with_bias, x.clone())),
        &values(with_bias.forward(x.clone())),
        0.0,
    );
    let bias_free = Conv2dConfig::new([2, 3], [3, 3])
        .with_bias(false)
        .init(&device);
    assert_close(
        "no bias",
        &values(conv2d(&bias_free, x.clone())),
        &values(bias_free.forward(x)),
        1e-6,
    );
}

/// The weight gradient alone, as `cargo xtask ops` times it, on the device without autodiff.
#[test]
fn weight_gradient_alone_matches_burn() {
    let device = Device::flex();
    let options = ConvOptions::new_with_padding([2, 1], [(1, 0), (2, 1)], [1, 2], 1);
    let x = Tensor::<4>::from_data(
        TensorData::new(pattern(3 * 4 * 9 * 8, 9), [3, 4, 9, 8]),
        &device,
    );
    let weight = Tensor::<4>::from_data(
        TensorData::new(pattern(5 * 4 * 3 * 3, 10), [5, 4, 3, 3]),
        &device,
    );
    let y = burn_conv2d(x.clone(), weight.clone(), None, options.clone());
    let grad = Tensor::<4>::from_data(
        TensorData::new(pattern(y.shape().num_elements(), 11), y.dims()),
        &device,
    );
    let ours = conv2d_weight_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
    let burns = burn::tensor::module::conv2d_weight_backward(x, weight, grad, options);
    assert_close("weight gradient alone", &values(ours), &values(burns), 1e-5);
}
