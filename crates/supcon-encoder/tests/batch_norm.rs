//! BatchNorm with PyTorch's semantics: batch statistics with the biased variance for the output,
//! the unbiased variance for the running estimate (`torch.nn.BatchNorm2d`'s documented update).

use burn::nn::BatchNormConfig;
use burn::prelude::*;
use supcon_encoder::norm::batch_norm;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_into_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn training_mode_updates_running_statistics_as_pytorch_does() {
    let device = Device::flex().autodiff();
    let (n, c, hw) = (3usize, 2usize, 4usize);
    let data: Vec<f32> = (0..n * c * hw)
        .map(|i| ((i * 7 % 11) as f32) * 0.3 - 1.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [n, c, 2, 2]), &device);
    let norm = BatchNormConfig::new(c).init(&device);
    let out = values(batch_norm(&norm, x));

    for channel in 0..c {
        let xs: Vec<f64> = (0..n)
            .flat_map(|b| (0..hw).map(move |k| (b * c + channel) * hw + k))
            .map(|i| f64::from(data[i]))
            .collect();
        let count = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / count;
        let biased = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count;
        let unbiased = biased * count / (count - 1.0);
        let running_mean = values(norm.running_mean.value_sync())[channel];
        let running_var = values(norm.running_var.value_sync())[channel];
        assert!(
            (running_mean - 0.1 * mean).abs() < 1e-6,
            "running mean {running_mean}"
        );
        assert!(
            (running_var - (0.9 + 0.1 * unbiased)).abs() < 1e-6,
            "running var {running_var} vs {}",
            0.9 + 0.1 * unbiased
        );
        // The output is normalised with the biased variance.
        for (j, &i) in (0..n)
            .flat_map(|b| (0..hw).map(move |k| (b * c + channel) * hw + k))
            .collect::<Vec<_>>()
            .iter()
            .enumerate()
        {
            let want = (xs[j] - mean) / (biased + 1e-5).sqrt();
            assert!((out[i] - want).abs() < 1e-5, "output {} vs {want}", out[i]);
        }
    }
}

#[test]
fn evaluation_mode_uses_running_statistics() {
    let device = Device::flex();
    let norm = BatchNormConfig::new(1).init(&device);
    let x = Tensor::<4>::from_data(TensorData::new(vec![2.0f32, -3.0], [2, 1, 1, 1]), &device);
    // Running mean 0, variance 1: the identity up to epsilon.
    let out = values(batch_norm(&norm, x));
    assert!((out[0] - 2.0 / (1.0f64 + 1e-5).sqrt()).abs() < 1e-6);
    assert!((out[1] + 3.0 / (1.0f64 + 1e-5).sqrt()).abs() < 1e-6);
}
