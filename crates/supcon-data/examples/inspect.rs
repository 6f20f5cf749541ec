//! Loads a dataset, reports how long it took, its shape and its classes.
//!
//! ```sh
//! cargo run --release -p supcon-data --example inspect -- idx ../shared/data/fashion-mnist
//! cargo run --release -p supcon-data --example inspect -- idx assets/mnist-10k
//! cargo run --release -p supcon-data --example inspect -- cifar10 DIR   # binary or Python version
//! cargo run --release -p supcon-data --example inspect -- folder DIR 32
//! cargo run --release -p supcon-data --example inspect -- embedded
//! ```

use std::path::Path;
use std::time::Instant;

use supcon_data::{ImageDataset, cifar, embedded_mnist, folder, idx};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(message) = run(&args) {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let kind = args.first().map(String::as_str).unwrap_or("embedded");
    let dir = args.get(1).map(Path::new);
    let need_dir = || dir.ok_or_else(|| format!("`{kind}` needs a folder"));
    let start = Instant::now();
    let parts: Vec<(String, ImageDataset)> = match kind {
        // Every set of files in the folder: `train` and `t10k` for MNIST's, `all` for
        // `assets/mnist-10k`.
        "idx" => {
            let dir = need_dir()?;
            let mut sets = Vec::new();
            for prefix in idx::sets_in(dir)? {
                let data = idx::load_set(dir, &prefix)?;
                sets.push((prefix, data));
            }
            if sets.is_empty() {
                return Err(format!("{}: no IDX files", dir.display()).into());
            }
            sets
        }
        "cifar10" => vec![
            ("train".into(), cifar::load_cifar10(need_dir()?, true)?),
            ("test".into(), cifar::load_cifar10(need_dir()?, false)?),
        ],
        "cifar100" => vec![
            (
                "train".into(),
                cifar::load_cifar100(need_dir()?, true, Default::default())?,
            ),
            (
                "test".into(),
                cifar::load_cifar100(need_dir()?, false, Default::default())?,
            ),
        ],
        "folder" => {
            let size = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
            vec![(
                "all".into(),
                folder::load_image_folder(need_dir()?, size, 3)?,
            )]
        }
        "embedded" => {
            let s = embedded_mnist()?;
            vec![
                ("train".into(), s.train),
                ("validation".into(), s.validation),
                ("test".into(), s.test),
            ]
        }
        other => {
            return Err(format!(
                "unknown dataset kind `{other}` (idx, cifar10, cifar100, folder, embedded)"
            )
            .into());
        }
    };
    let elapsed = start.elapsed();
    for (name, data) in &parts {
        println!(
            "{name}: {} images of {:?}, {} classes, per class {:?}",
            data.len(),
            data.image_shape(),
            data.num_classes(),
            data.class_counts()
        );
    }
    println!("loaded in {:.3} s", elapsed.as_secs_f64());
    Ok(())
}
