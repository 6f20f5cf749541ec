//! The losses as Burn modules, and the views-to-loss layout.

mod common;

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use common::*;
use supcon_loss::{
    NPairsLoss, NPairsLossConfig, Positives, SimClrLoss, SimClrLossConfig, SupConLoss,
    SupConLossConfig, TripletLoss, TripletLossConfig, by_image,
};

/// A user's model holding every loss as an ordinary field: no `#[module(skip)]` needed.
#[derive(Module, Debug)]
struct Projector {
    linear: Linear,
    supcon: SupConLoss,
    simclr: SimClrLoss,
    triplet: TripletLoss,
    npairs: NPairsLoss,
}

#[test]
fn losses_sit_in_a_derived_module_and_add_no_parameters() {
    let device = device();
    let model = Projector {
        linear: LinearConfig::new(3, 4).init(&device),
        supcon: SupConLossConfig::new().with_temperature(0.5).init(),
        simclr: SimClrLossConfig::new().init(),
        triplet: TripletLossConfig::new().init(),
        npairs: NPairsLossConfig::new().init(),
    };
    assert_eq!(model.num_params(), 3 * 4 + 4);
    // Module operations keep the constants.
    assert_eq!(model.clone().valid().supcon.temperature(), 0.5);
    let z = model.linear.forward(Tensor::<2>::ones([4, 3], &device));
    let loss = model
        .supcon
        .forward(by_image(z, 2), Positives::Labels(labels(&[0, 1])));
    assert!(scalar(loss).is_finite());
}

#[test]
fn by_image_pairs_the_views_of_each_image() {
    // Rows view by view: view v of image i is row v * batch + i, holding (10 v + i).
    let (batch, views) = (3, 2);
    let rows: Vec<f32> = (0..views)
        .flat_map(|v| (0..batch).map(move |i| (10 * v + i) as f32))
        .collect();
    let z = Tensor::<2>::from_data(TensorData::new(rows, [views * batch, 1]), &device());
    let got = values(by_image(z.clone(), views));
    let want: Vec<f64> = (0..batch)
        .flat_map(|i| (0..views).map(move |v| (10 * v + i) as f64))
        .collect();
    assert_eq!(got, want);
    // The plain reshape is not the same layout: it pairs rows 0 and 1 (two first views).
    let wrong = values(z.reshape([batch, views, 1]));
    assert_ne!(wrong, want);
}

#[test]
fn the_loss_of_by_image_equals_the_loss_of_the_images_views() {
    let mut rng = Lcg(5);
    let rows = rng.unit_features(4, 2, 3); // [image][view][dim]
    let ids = [0, 1, 0, 2];
    let loss = SupConLossConfig::new().init();
    let want = scalar(loss.forward(features(&rows), Positives::Labels(labels(&ids))));
    // The encoder's layout: view 0 of every image, then view 1.
    let flat: Vec<f32> = (0..2)
        .flat_map(|v| rows.iter().flat_map(move |image| image[v].clone()))
        .map(|x| x as f32)
        .collect();
    let z = Tensor::<2>::from_data(TensorData::new(flat, [8, 3]), &device());
    let got = scalar(loss.forward(by_image(z.clone(), 2), Positives::Labels(labels(&ids))));
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    let reshaped = scalar(loss.forward(z.reshape([4, 2, 3]), Positives::Labels(labels(&ids))));
    assert!(
        (reshaped - want).abs() > 1e-3,
        "the plain reshape should differ"
    );
}

#[test]
#[should_panic(expected = "7 rows cannot be 2 views")]
fn by_image_refuses_rows_that_are_not_whole_views() {
    let _ = by_image(Tensor::<2>::zeros([7, 3], &device()), 2);
}
