//! The image-folder loader: training batches (decode, random resized crop to 224, flip,
//! normalize) streamed by 1 and 2 worker threads, and the evaluation transform (resize to
//! 256, centre crop 224). One iteration reads 8 batches of 32 images: images per second =
//! 256 / time.
//!
//! ```sh
//! python3 benches/make_jpeg_folder.py /tmp/jpeg20k --classes 100 --per-class 200
//! BIOFEEDBACK_BENCH_FOLDER=/tmp/jpeg20k cargo bench -p biofeedback-trainer --bench loader
//! ```
//! Without `BIOFEEDBACK_BENCH_FOLDER` it reads `../shared/data/imagenet-sample` (20 photos of
//! 512x512, repeated). `eval_224_reduced_decode` compares decoding those at half scale through
//! the DCT (what `reduced_decode` does when the photo keeps `resize` pixels) with full decoding. The PyTorch peer is `benches/peers/image_folder_loader.py`;
//! `benches/loader.sh` runs both side by side.

use biofeedback_trainer::data::image_folder::{self, ImageFolderSection};
use biofeedback_trainer::data::loader::{Batches, LoaderConfig};
use biofeedback_trainer::data::{Source, Splits};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

fn main() {
    divan::main();
}

const BATCH: usize = 32;
const BATCHES: usize = 8;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/imagenet-sample")
}

/// The training split of `dir` read at `image_size` from shorter side `resize`, JPEGs
/// decoded at a reduced scale where allowed or not.
fn open(
    dir: &std::path::Path,
    reduced_decode: bool,
    image_size: usize,
    resize: usize,
) -> Arc<dyn Source> {
    let section = ImageFolderSection {
        holdout_every: 1000,
        reduced_decode,
        image_size,
        resize,
        ..Default::default()
    };
    let folder = image_folder::open(dir, &section, Splits::Both).expect("the folder opens");
    Arc::new(folder.train.expect("a training split"))
}

/// The training split of the bench folder, scanned once.
fn folder() -> Arc<dyn Source> {
    static SET: OnceLock<Arc<dyn Source>> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = std::env::var_os("BIOFEEDBACK_BENCH_FOLDER")
            .map(PathBuf::from)
            .unwrap_or_else(sample);
        open(&dir, true, 224, 256)
    })
    .clone()
}

/// `BATCHES` batches of `BATCH` images spread over the whole set, a new plan each call.
fn plan(source: &dyn Source, round: usize) -> Vec<Vec<usize>> {
    let n = source.len();
    (0..BATCHES)
        .map(|b| {
            (0..BATCH)
                .map(|j| ((round * BATCHES + b) * BATCH + j) * 7919 % n)
                .collect()
        })
        .collect()
}

fn stream(bencher: divan::Bencher, workers: usize, augment: Option<u64>) {
    stream_from(bencher, folder(), workers, augment);
}

fn stream_from(
    bencher: divan::Bencher,
    source: Arc<dyn Source>,
    workers: usize,
    augment: Option<u64>,
) {
    let mut round = 0;
    bencher.bench_local(|| {
        round += 1;
        let config = LoaderConfig {
            workers,
            prefetch: 2 * workers,
        };
        Batches::new(
            source.clone(),
            plan(source.as_ref(), round),
            0,
            augment,
            config,
        )
        .map(|b| b.expect("reads").len())
        .sum::<usize>()
    });
}

/// Training transform, `workers` threads.
#[divan::bench(args = [1, 2], sample_count = 5, sample_size = 1)]
fn train_224(bencher: divan::Bencher, workers: usize) {
    stream(bencher, workers, Some(1));
}

/// Evaluation transform, `workers` threads.
#[divan::bench(args = [1, 2], sample_count = 5, sample_size = 1)]
fn eval_224(bencher: divan::Bencher, workers: usize) {
    stream(bencher, workers, None);
}

/// What decoding JPEGs through a reduced DCT buys: the evaluation transform of the 512x512
/// ImageNet sample photos, 1 worker, at 224 from shorter side 256 (half-scale decoding) and at
/// 56 from 64 (eighth-scale), decoded reduced or in full.
#[divan::bench(
    args = ["reduced-256", "full-256", "reduced-64", "full-64"],
    sample_count = 5,
    sample_size = 1
)]
fn eval_reduced_decode(bencher: divan::Bencher, case: &str) {
    let (how, resize) = case.split_once('-').expect("how-resize");
    let resize: usize = resize.parse().expect("a side");
    let size = resize * 7 / 8;
    stream_from(
        bencher,
        open(&sample(), how == "reduced", size, resize),
        1,
        None,
    );
}
