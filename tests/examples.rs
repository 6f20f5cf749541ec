//! The examples of `examples/`, run for a few steps.

use std::sync::Mutex;

use burn::prelude::*;

/// The examples seed the flex device's generator, which the whole process shares: tests that
/// seed it run one at a time.
static DEVICE_GENERATOR: Mutex<()> = Mutex::new(());

#[path = "../examples/custom_loop.rs"]
mod custom_loop;

#[test]
fn the_custom_loop_trains_and_is_reproducible() {
    let _generator = DEVICE_GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let first = custom_loop::train(4, 7);
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|l| l.is_finite() && *l > 0.0), "{first:?}");
    // The same seed gives the same initialisation, views and so losses.
    assert_eq!(custom_loop::train(4, 7), first);
}

#[path = "../examples/learner.rs"]
mod learner;

#[test]
fn the_learner_example_trains_and_is_reproducible() {
    let _generator = DEVICE_GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let initial = {
        let device = Device::flex().autodiff();
        device.seed(3);
        learner::initial_model(&device)
    };
    let first = learner::train(&dir.path().join("a"), 3, 3);
    let second = learner::train(&dir.path().join("b"), 3, 3);
    // The projections of 8 digits, in evaluation mode.
    let digits = supcon::data::embedded_mnist().unwrap().test;
    let values = |m: &learner::SupConTraining| {
        let device = Device::flex();
        let batch = digits.batch(&[0, 1, 2, 3, 4, 5, 6, 7], &device).unwrap();
        let model = m.model.valid().to_device(&device);
        model
            .forward(batch.images)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    };
    assert!(values(&first).iter().all(|v| v.is_finite()));
    assert_ne!(
        values(&first),
        values(&initial),
        "training changed the model"
    );
    assert_eq!(values(&first), values(&second), "same seed, same model");
}
