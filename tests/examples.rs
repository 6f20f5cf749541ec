//! The examples of `examples/`, run for a few steps.

#[path = "../examples/custom_loop.rs"]
mod custom_loop;

#[test]
fn the_custom_loop_trains_and_is_reproducible() {
    let first = custom_loop::train(4, 7);
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|l| l.is_finite() && *l > 0.0), "{first:?}");
    // The same seed gives the same initialisation, views and so losses.
    assert_eq!(custom_loop::train(4, 7), first);
}
