//! SupCon with burn-train's `Learner`: the loss is a module inside the trained model, views are
//! made by a `Batcher` in Burn's data loader, and `TrainStep` is the whole training step.
//! Run with `cargo run --release --example learner` (it writes to `target/learner-example`).

use std::path::Path;
use std::sync::Arc;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::transform::PartialDataset;
use burn::prelude::*;
use burn::train::metric::{Adaptor, LossInput, LossMetric};
use burn::train::{
    InferenceStep, ItemLazy, Learner, SupervisedTraining, TrainOutput, TrainStep,
    logger::InMemoryMetricLogger,
};
use supcon::augment::{ViewBatch, ViewBatcher, ViewPipeline, ViewPipelineConfig};
use supcon::data::embedded_mnist;
use supcon::encoder::{Architecture, EncoderConfig};
use supcon::head::{SupConModel, SupConModelConfig};
use supcon::loss::{Positives, SupConLoss, SupConLossConfig, by_image};
use supcon_train::optim::PyTorchSgdConfig;
use supcon_train::schedule::{LearningRateSchedule, ScheduleKind, ScheduledRate};

/// Views per image.
const VIEWS: usize = 2;

/// The encoder with its projection head and the loss: what the `Learner` trains.
#[derive(Module, Debug)]
pub struct SupConTraining {
    /// Encoder and projection head.
    pub model: SupConModel,
    /// The SupCon loss (a module without parameters).
    pub loss: SupConLoss,
}

/// A step's loss, for burn-train's loss metric.
pub struct SupConOutput {
    /// The batch's mean loss, `[1]`.
    pub loss: Tensor<1>,
}

impl ItemLazy for SupConOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        self.loss.device().flush()?;
        Ok(Self {
            loss: self.loss.without_autodiff(),
        })
    }
}

impl Adaptor<LossInput> for SupConOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl SupConTraining {
    fn loss_of(&self, batch: ViewBatch) -> Tensor<1> {
        let z = self.model.forward(batch.views); // [V*B, 128], view by view
        self.loss
            .forward(by_image(z, VIEWS), Positives::Labels(batch.labels))
    }
}

impl TrainStep for SupConTraining {
    type Input = ViewBatch;
    type Output = SupConOutput;

    fn step(&self, batch: ViewBatch) -> TrainOutput<SupConOutput> {
        let loss = self.loss_of(batch);
        TrainOutput::new(self, loss.backward(), SupConOutput { loss })
    }
}

impl InferenceStep for SupConTraining {
    type Input = ViewBatch;
    type Output = SupConOutput;

    fn step(&self, batch: ViewBatch) -> SupConOutput {
        SupConOutput {
            loss: self.loss_of(batch),
        }
    }
}

/// A small CNN for the digits with its head, and the loss at temperature 0.1.
pub fn initial_model(device: &Device) -> SupConTraining {
    SupConTraining {
        model: SupConModelConfig::new(EncoderConfig::new(Architecture::Small).with_in_channels(1))
            .init(device),
        loss: SupConLossConfig::new().with_temperature(0.1).init(),
    }
}

/// Trains for one epoch of `steps` batches of 32 digits, checkpoints and logs under `dir`, and
/// returns the trained model.
pub fn train(dir: &Path, steps: usize, seed: u64) -> SupConTraining {
    const BATCH: usize = 32;
    let device = Device::flex().autodiff();
    device.seed(seed); // seeds the model's initialisation
    let splits = embedded_mnist().expect("the embedded digits");
    let pipeline = ViewPipeline::new(
        ViewPipelineConfig::supcon(vec![0.1307], vec![0.3081])
            .with_flip_probability(0.0)
            .with_color_jitter(None),
    );
    // The views of a batch depend on the seed and its images only, so they are the same with
    // any number of workers; one worker keeps the batches' order, hence the run, reproducible.
    let batcher = ViewBatcher::new(pipeline, VIEWS, seed);
    let loader = |dataset, shuffle: Option<u64>| {
        let builder = DataLoaderBuilder::new(batcher.clone()).batch_size(BATCH);
        let builder = match shuffle {
            Some(seed) => builder.shuffle(seed),
            None => builder,
        };
        builder
            .num_workers(1)
            .set_device(device.clone())
            .build(dataset)
    };
    let train = PartialDataset::new(splits.train, 0, steps * BATCH);
    let validation = PartialDataset::new(splits.test, 0, 2 * BATCH);
    let (train, validation) = (loader(train, Some(seed)), loader(validation, None));

    let model = initial_model(&device);
    let optimizer = PyTorchSgdConfig::new().with_weight_decay(1e-4).init();
    let schedule = LearningRateSchedule {
        base: 0.05,
        epochs: 1,
        kind: ScheduleKind::Cosine,
        decay_epochs: vec![],
        decay_rate: 0.1,
        warm: false,
    };
    let rates = ScheduledRate::new(schedule, steps);
    let result = SupervisedTraining::new(dir, Arc::clone(&train), Arc::clone(&validation))
        .metrics((LossMetric::new(),))
        .with_metric_logger(InMemoryMetricLogger::new())
        .with_application_logger(None)
        .num_epochs(1)
        .launch(Learner::new(model, optimizer, rates));
    result.model
}

#[allow(dead_code)] // the test suite runs `train`, not `main`
fn main() {
    let model = train(Path::new("target/learner-example"), 40, 42);
    println!("trained: {} parameters", model.num_params());
}
