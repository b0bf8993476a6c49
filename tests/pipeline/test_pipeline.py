"""The KFP pipeline: compiled YAML that reloads with kfp and carries the hardware asked for, and a real
end-to-end run with kfp.local on real files. (No ``from __future__ import annotations``: KFP reads the
pipeline signatures defined here.)"""

import json
import re
import shutil
import sys

import pytest
import yaml
from kfp import compiler, components, dsl

from mammolibs.pipeline.local import demo_sources, run_local, summarize_run
from mammolibs.pipeline.steps import merge_shard_sets, parse_source, standardize_source, train_flags
from pipelines.mammoflow import check_arguments, mammoflow
from pipelines.mammoflow import main as pipeline_main

TRAINING = {
    "train-encoder": "encoder",
    "train-autoencoder": "autoencoder",
    "finetune-unet": "finetune",
    "train-encoder-2": "classifier_encoder",
    "train-classifier": "classifier",
}


def compile_to(tmp_path, *flags) -> list[dict]:
    output = tmp_path / "mammoflow.yaml"
    pipeline_main(["compile", "--output", str(output), *flags])
    return list(yaml.safe_load_all(output.read_text()))


def executor(spec: dict, task: str) -> dict:
    return spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


def test_compiled_pipeline_fans_out_per_source_and_reloads_with_kfp(tmp_path):
    [spec] = compile_to(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(["for-loop-1", "merge-shards", *TRAINING, "evaluate", "condition-2", "condition-3"])
    assert (
        tasks["condition-2"]["triggerPolicy"]["condition"]
        == "inputs.parameter_values['pipelinechannel--predict_images'] != ''"
    )
    assert tasks["condition-2"]["dependentTasks"] == ["evaluate", "finetune-unet", "train-classifier"]
    assert (
        tasks["condition-3"]["triggerPolicy"]["condition"]
        == "inputs.parameter_values['pipelinechannel--generalization'] == true"
    )
    loop = tasks["for-loop-1"]
    assert loop["taskInfo"]["name"] == "each-source"
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--sources"
    [standardize] = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"].values()
    assert standardize["cachingOptions"] == {"enableCache": True}
    salt = standardize["inputs"]["parameters"]["salt_file"]  # every source: one salt, from one secret file
    assert salt["componentInputParameter"] == "pipelinechannel--salt_file"
    assert tasks["merge-shards"]["cachingOptions"] == {"enableCache": True}
    assert tasks["merge-shards"]["dependentTasks"] == ["for-loop-1"]
    assert all(tasks[t]["cachingOptions"] == {} for t in [*TRAINING, "evaluate"])  # off: trained anew each run
    assert tasks["train-autoencoder"]["dependentTasks"] == ["merge-shards", "train-encoder"]
    assert tasks["train-classifier"]["dependentTasks"] == ["merge-shards", "train-encoder-2"]  # its own encoder
    encoders = [t for t in TRAINING if t.startswith("train-encoder")]
    steps = {t: tasks[t]["inputs"]["parameters"]["recipe_step"]["runtimeValue"]["constant"] for t in encoders}
    assert steps == {"train-encoder": "encoder", "train-encoder-2": "classifier_encoder"}
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["finetune-unet", "merge-shards", "train-classifier"]
    assert {
        "sources",
        "salt_file",
        "image_size",
        "encoder_epochs",
        "autoencoder_epochs",
        "finetune_epochs",
        "classifier_encoder_epochs",
        "classifier_epochs",
        "generalization",
        "predict_images",
    } <= set(spec["root"]["inputDefinitions"]["parameters"])
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert {name: o["artifactType"]["schemaTitle"] for name, o in outputs.items()} == {
        "evaluation": "system.Artifact",
        "metrics": "system.Metrics",
        "classification": "system.ClassificationMetrics",
        "report": "system.HTML",
    }
    images = {executor(spec, t.removeprefix("exec-"))["image"] for t in spec["deploymentSpec"]["executors"]}
    assert images == {"mammoflow/mammoflow-cpu:0.1.0"}

    reloaded = components.load_component_from_file(str(tmp_path / "mammoflow.yaml"))
    assert reloaded.name == "mammoflow"

    @dsl.pipeline(name="study")
    def study(sources: list):  # the reloaded YAML composes like any component
        reloaded(sources=sources, finetune_epochs=3)

    compiler.Compiler().compile(study, str(tmp_path / "study.yaml"))
    assert "comp-mammoflow" in yaml.safe_load((tmp_path / "study.yaml").read_text())["components"]


def custom_job_pools(spec: dict, component: str) -> list[dict]:
    """The worker pools of a step compiled as a Vertex AI custom job."""
    return spec["components"][f"comp-{component}"]["inputDefinitions"]["parameters"]["worker_pool_specs"][
        "defaultValue"
    ]


def custom_job(spec: dict, component: str) -> dict:
    """The one worker pool of a step compiled as a Vertex AI custom job."""
    return custom_job_pools(spec, component)[0]


def placement(spec: dict, task: str) -> dict:
    """The ``placement`` a training step was compiled with."""
    return spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"]["placement"]["runtimeValue"]["constant"]


def test_vertex_yaml_runs_steps_as_custom_jobs_on_the_machines_named(tmp_path):
    [spec] = compile_to(
        tmp_path,
        "--target",
        "vertex",
        "--registry",
        "us-docker.pkg.dev/lab/mammoflow",
        "--tag",
        "1.2",
        "--accelerator",
        "encoder=tpu-v5e:8",
        "--accelerator",
        "autoencoder=nvidia-a100-80gb:1",
        "--machine-type",
        "autoencoder=a2-ultragpu-1g",
        "--accelerator",
        "finetune=nvidia-h100:8",
        "--accelerator",
        "classifier_encoder=nvidia-l4:1",
        "--accelerator",
        "classifier=nvidia-l4:2",
        "--machine-type",
        "classifier=g2-standard-24",
        "--machine-type",
        "standardize=c3-highcpu-22",  # a machine type no table here knows: passed on as named
    )
    machines = {c: custom_job(spec, c)["machine_spec"] for c in ["standardize-source", *TRAINING]}
    assert machines == {
        "standardize-source": {"machine_type": "c3-highcpu-22"},
        "train-encoder": {"machine_type": "ct5lp-hightpu-8t", "tpu_topology": "2x4"},
        "train-autoencoder": {
            "machine_type": "a2-ultragpu-1g",
            "accelerator_type": "NVIDIA_A100_80GB",
            "accelerator_count": 1,
        },
        "finetune-unet": {
            "machine_type": "a3-highgpu-8g",
            "accelerator_type": "NVIDIA_H100_80GB",
            "accelerator_count": 8,
        },
        "train-encoder-2": {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1},
        "train-classifier": {"machine_type": "g2-standard-24", "accelerator_type": "NVIDIA_L4", "accelerator_count": 2},
    }
    images = {c: custom_job(spec, c)["container_spec"]["image_uri"] for c in machines}
    registry = "us-docker.pkg.dev/lab/mammoflow/mammoflow"
    assert images == {
        "standardize-source": f"{registry}-cpu:1.2",
        "train-encoder": f"{registry}-tpu:1.2",
        "train-autoencoder": f"{registry}-cuda:1.2",
        "finetune-unet": f"{registry}-cuda:1.2",
        "train-encoder-2": f"{registry}-cuda:1.2",
        "train-classifier": f"{registry}-cuda:1.2",
    }
    assert custom_job(spec, "train-encoder")["container_spec"]["env"] == [{"name": "PJRT_DEVICE", "value": "TPU"}]
    finetune = custom_job(spec, "finetune-unet")["container_spec"]
    assert 'train_stage("finetune"' in finetune["command"][-1] and "--executor_input" in finetune["args"]
    for component in machines:  # the Vertex AI launcher starts each job; the step's own inputs stay
        assert executor(spec, component)["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components:")
    assert {"shards", "epochs", "settings", "placement"} <= set(
        spec["components"]["comp-finetune-unet"]["inputDefinitions"]["parameters"]
    ) | set(spec["components"]["comp-finetune-unet"]["inputDefinitions"]["artifacts"])
    assert {t: placement(spec, t)["processes"] for t in TRAINING} == {
        "train-encoder": 1,
        "train-autoencoder": 1,
        "finetune-unet": 8,
        "train-encoder-2": 1,
        "train-classifier": 2,
    }
    assert {placement(spec, t)["nodes"] for t in TRAINING} == {1}
    assert all(len(custom_job_pools(spec, c)) == 1 for c in machines)  # one machine each
    evaluate = executor(spec, "evaluate")  # no machine asked for: a plain step on Vertex AI's default
    assert evaluate["image"] == f"{registry}-cpu:1.2" and "resources" not in evaluate
    assert "comp-merge-shards" in spec["components"] and "worker_pool_specs" not in json.dumps(
        spec["components"]["comp-merge-shards"]
    )


def test_kubeflow_yaml_places_steps_on_gke_tpu_and_gpu_nodes(tmp_path):
    spec, platform = compile_to(
        tmp_path,
        "--accelerator",
        "autoencoder=tpu-v4:4",
        "--accelerator",
        "classifier=nvidia-t4:1",
        "--machine-type",
        "classifier=n1-standard-8",
    )
    autoencoder = executor(spec, "train-autoencoder")["resources"]["accelerator"]
    assert (autoencoder["resourceType"], autoencoder["resourceCount"]) == ("google.com/tpu", "4")
    assert executor(spec, "train-classifier")["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    selectors = {
        name.removeprefix("exec-"): e["nodeSelector"]["labels"]
        for name, e in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items()
    }
    assert selectors == {
        "train-autoencoder": {
            "cloud.google.com/gke-tpu-accelerator": "tpu-v4-podslice",
            "cloud.google.com/gke-tpu-topology": "2x2x1",
        },
        "train-classifier": {
            "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
            "node.kubernetes.io/instance-type": "n1-standard-8",
        },
    }


SEVERAL_MACHINES = ("--accelerator", "encoder=tpu-v5e:16", "--accelerator", "finetune=nvidia-h100:8x4")


def test_vertex_yaml_runs_a_tpu_slice_and_gpu_machines_as_custom_jobs_of_several_replicas(tmp_path):
    registry = "us-docker.pkg.dev/lab/mammoflow"
    [spec] = compile_to(tmp_path, "--target", "vertex", "--registry", registry, "--tag", "1.2", *SEVERAL_MACHINES)
    parameters = spec["components"]["comp-finetune-unet"]["inputDefinitions"]["parameters"]
    primary, workers = custom_job_pools(spec, "finetune-unet")  # pool 0 the primary (node 0), pool 1 the rest
    assert (primary["replica_count"], workers["replica_count"]) == (1, 3)
    for pool in (primary, workers):
        assert pool["machine_spec"] == {
            "machine_type": "a3-highgpu-8g",
            "accelerator_type": "NVIDIA_H100_80GB",
            "accelerator_count": 8,
        }
        assert pool["container_spec"]["image_uri"] == f"{registry}/mammoflow-cuda:1.2"
        assert 'train_stage("finetune"' in pool["container_spec"]["command"][-1]
    assert parameters["restart_job_on_worker_restart"]["defaultValue"] is True  # all nodes back to a checkpoint
    assert placement(spec, "finetune-unet") == {"processes": 8, "nodes": 4}  # torchrun: 8 per node, 4 nodes

    [tpu] = custom_job_pools(spec, "train-encoder")  # a slice is one replica; Vertex AI starts its 4 hosts
    assert tpu["replica_count"] == 1
    assert tpu["machine_spec"] == {"machine_type": "ct5lp-hightpu-4t", "tpu_topology": "4x4"}
    assert tpu["container_spec"]["image_uri"] == f"{registry}/mammoflow-tpu:1.2"
    assert tpu["container_spec"]["env"] == [{"name": "PJRT_DEVICE", "value": "TPU"}]
    assert placement(spec, "train-encoder") == {"processes": 1, "nodes": 1}  # torch-xla spans the hosts
    for one_machine in ("train-autoencoder", "train-classifier"):
        assert placement(spec, one_machine) == {"processes": 1, "nodes": 1}


def test_kubeflow_yaml_starts_a_jobset_for_a_tpu_slice_and_a_pytorchjob_for_gpu_machines(tmp_path):
    spec, *platform = compile_to(tmp_path, "--registry", "lab.registry/mammoflow", *SEVERAL_MACHINES)
    for step in ("train-encoder", "finetune-unet"):  # the step's own pod: a CPU pod that starts the job
        assert executor(spec, step)["image"] == "lab.registry/mammoflow/mammoflow-cpu:0.1.0"
        assert "resources" not in executor(spec, step)
    assert not platform  # no node selectors: no step asked for one machine's accelerators

    slice_job = placement(spec, "train-encoder")["job"]
    assert (slice_job["apiVersion"], slice_job["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    [hosts] = slice_job["spec"]["replicatedJobs"]
    assert hosts["replicas"] == 1 and slice_job["spec"]["failurePolicy"] == {"maxRestarts": 3}
    indexed = hosts["template"]["spec"]
    assert (indexed["parallelism"], indexed["completions"], indexed["completionMode"]) == (4, 4, "Indexed")
    pod = indexed["template"]["spec"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4",
    }
    [host] = pod["containers"]
    assert host["image"] == "lab.registry/mammoflow/mammoflow-tpu:0.1.0"
    assert host["resources"]["limits"] == {"google.com/tpu": 4}  # each host's share of the 16 chips
    assert host["env"] == [{"name": "PJRT_DEVICE", "value": "TPU"}]
    assert host["command"] == ["python", "-m", "mammolibs.pipeline.replica", "--processes", "1", "--nodes", "1"]

    gpu_job = placement(spec, "finetune-unet")["job"]
    assert (gpu_job["apiVersion"], gpu_job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = gpu_job["spec"]["pytorchReplicaSpecs"]
    assert {kind: r["replicas"] for kind, r in replicas.items()} == {"Master": 1, "Worker": 3}
    for replica in replicas.values():
        [container] = replica["template"]["spec"]["containers"]
        assert container["name"] == "pytorch" and container["image"] == "lab.registry/mammoflow/mammoflow-cuda:0.1.0"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
        assert container["command"][-4:] == ["--processes", "8", "--nodes", "4"]
        assert replica["template"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert placement(spec, "finetune-unet")["nodes"] == 4


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--accelerator", "encoder=tpu-v6:4"], "unknown accelerator 'tpu-v6'; choose one of tpu-v5e, tpu-v6e"),
        (["--accelerator", "encoder=tpu-v5e:3"], "a slice of 1 or 4 or 8 or 16 .* chips .*hosts of 4"),
        (["--accelerator", "encoder=tpu-v5e:12"], "a slice of 1 or 4 or 8 or 16 or 32"),
        (["--accelerator", "encoder=tpu-v4:16x2"], "a slice of 4 or 8 or 16"),
        (["--accelerator", "finetune=nvidia-h100:8x0"], "GPUs per machine x machines, e.g. nvidia-h100:8x2"),
        (["--accelerator", "finetune=nvidia-h100:8x"], "GPUs per machine x machines"),
        (["--accelerator", "generalize=nvidia-l4:1x2"], "generalize runs on one machine; several go to encoder"),
        (["--accelerator", "generalize=tpu-v5e:16"], "generalize runs on one machine"),
        (["--accelerator", "evaluate=nvidia-l4:1"], "accelerators go to training steps"),
        (["--accelerator", "encoder=nvidia-l4"], "give a count of 1 or more"),
        (["--machine-type", "train=n2-standard-8"], "unknown step 'train'; the steps are standardize"),
        (
            ["--target", "vertex", "--machine-type", "encoder=n2-standard-8", "--accelerator", "encoder=tpu-v5e:4"],
            "Vertex AI attaches tpu-v5e to ct5lp-\\* machines, e.g. ct5lp-hightpu-1t",
        ),
        (
            [
                "--target",
                "vertex",
                "--machine-type",
                "finetune=a2-highgpu-1g",
                "--accelerator",
                "finetune=nvidia-h100:1",
            ],
            "attaches nvidia-h100 to a3-highgpu-",
        ),
        (["--target", "vertex", "--accelerator", "finetune=nvidia-l4:3"], "machines with 1 or 2 or 4 or 8 of them"),
        (["--machine-type", "encoder=N2 standard"], "not a machine type"),
        (["--machine-type", "encoder=../../x"], "not a machine type"),
        (["--registry", "REGISTRY"], "still a placeholder"),
        (["--registry", "us-docker.pkg.dev/PROJECT/mammoflow"], "still a placeholder"),
        (["--registry", "<your registry>"], "still a placeholder"),
        (["--target", "vertex"], "Vertex AI pulls images from a registry host"),
    ],
)
def test_compile_names_each_hardware_mistake(tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        compile_to(tmp_path, *flags)
    assert not (tmp_path / "mammoflow.yaml").exists()


def test_vertex_machines_without_the_pipeline_components_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google_cloud_pipeline_components.v1.custom_job", None)  # not installed
    flags = ["--target", "vertex", "--registry", "us-docker.pkg.dev/lab/mammoflow"]
    with pytest.raises(SystemExit, match=r"pip install 'mammoflow\[vertex\]'"):
        compile_to(tmp_path, *flags, "--accelerator", "finetune=nvidia-l4:1")
    assert not (tmp_path / "mammoflow.yaml").exists()
    [spec] = compile_to(tmp_path, *flags)  # no machine named: plain steps, no custom jobs needed
    assert "worker_pool_specs" not in json.dumps(spec)


def test_step_arguments_are_checked_and_become_flags():
    assert parse_source("dicom=gs://b/x=1") == ("dicom", "gs://b/x=1")
    with pytest.raises(ValueError, match="NAME=URL"):
        parse_source("gs://b/x")
    assert train_flags(2, {"batch_size": 8.0, "lr": 0.003, "compile": True, "resume": False}) == [
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "0.003",
        "--compile",
    ]
    with pytest.raises(ValueError, match="<stage>_epochs"):
        train_flags(2, {"epochs": 3})
    assert check_arguments({"finetune_settings": {"model": "deeplabv3", "patch_size": 128}})
    with pytest.raises(ValueError, match="stage 'finetune' cannot train model 'resnet18'"):
        check_arguments({"finetune_settings": {"model": "resnet18"}})
    with pytest.raises(ValueError, match=r"unknown settings \['patch'\]"):
        check_arguments({"pretrain_settings": {"patch": 128}})


def test_sources_standardized_apart_share_the_salt_file_and_merge(mias_subset, dicom_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MAMMOFLOW_SALT")
    salt = tmp_path / "salt"
    with pytest.raises(ValueError, match="salt file .* does not exist: make it once before the run"):
        standardize_source(f"mias={mias_subset}", str(tmp_path / "mias"), 32, 1, str(salt))
    salt.write_text("a secret salt of this project, never shared")
    parts = [
        standardize_source(f"{name}={folder}", str(tmp_path / name), 32, 1, str(salt))["written"]
        for name, folder in (("mias", mias_subset), ("dicom", dicom_dir))
    ]
    merged = merge_shard_sets([str(tmp_path / "mias"), str(tmp_path / "dicom")], str(tmp_path / "merged"))
    assert merged["written"] == sum(parts) == 24 + 8


def test_pipeline_runs_locally_end_to_end(mias_subset, tmp_path, capsys):
    sources = demo_sources(str(tmp_path), {"mias": str(mias_subset)})
    tiny = {"batch_size": 4, "width": 4}
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(mias_subset / "mdb012.pgm", scans)
    (scans / "notes.png").write_text("not an image")
    run_local(
        mammoflow,
        {
            "sources": sources,
            "image_size": 64,
            "encoder_epochs": 1,
            "autoencoder_epochs": 1,
            "finetune_epochs": 1,
            "classifier_encoder_epochs": 1,
            "classifier_epochs": 1,
            "pretrain_settings": tiny,
            "finetune_settings": tiny,
            "classifier_pretrain_settings": {**tiny, "max_steps": 2, "model": "basic_unet"},  # small checkpoints
            "classifier_settings": {"batch_size": 8},
            "generalization": True,
            "predict_images": str(scans),
        },
        str(tmp_path / "kfp"),
        str(tmp_path / "run-local.log"),
    )
    shown = capsys.readouterr().out.splitlines()  # one line as each step starts and ends; the rest in the log
    assert len(shown) <= 40 and any(
        re.fullmatch(r"\[\d\d:\d\d\] evaluate: success in \d+ s", line) for line in shown
    ), shown
    assert "Streamed logs" in (tmp_path / "run-local.log").read_text()
    [run] = [p for p in (tmp_path / "kfp").iterdir() if p.name.startswith("mammoflow")]
    per_source = [
        json.loads(m.read_text())["counts"]["source"] for m in run.glob("*/standardize-source/shards/manifest.json")
    ]
    assert sorted(per_source, key=str) == [{"dicom": 8}, {"mias": 24}]
    manifest = json.loads((run / "merge-shards" / "shards" / "manifest.json").read_text())
    assert manifest["counts"]["source"] == {"mias": 24, "dicom": 8}
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"]
    for step in TRAINING:
        assert (run / step / "model" / "checkpoints" / "final.pt").stat().st_size > 0
        assert list((run / step / "model" / "tensorboard").glob("events.out.tfevents.*"))
    evaluation = run / "evaluate" / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    overall = metrics["overall"]
    assert 0.0 <= overall["segmentation"]["dice"]["mean"] <= 1.0 and set(metrics["sources"]) == {"mias"}
    point = json.loads((run / "train-classifier" / "model" / "operating_point.json").read_text())
    assert point == metrics["operating_point"]  # stored with the model for mammo predict
    report = (run / "evaluate" / "report").read_text()
    assert "<h1>mammoflow evaluation</h1>" in report and "data:image/png;base64," in report
    logged = json.loads((run / "evaluate" / "executor_output.json").read_text())["artifacts"]
    confusion = logged["classification"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert (
        sum(map(sum, (row["row"] for row in confusion["rows"]))) == overall["image_level"]["malignant_vs_rest"]["cases"]
    )
    assert logged["metrics"]["artifacts"][0]["metadata"]["all.segmentation.dice.mean"] == pytest.approx(
        overall["segmentation"]["dice"]["mean"]
    )
    [batch] = run.glob("**/predict/predictions")
    [found] = [json.loads(line) for line in (batch / "findings.jsonl").read_text().splitlines()]
    assert found["image"] == "mdb012.pgm" and found["operating_point"]["unet_threshold"] == point["unet_threshold"]
    assert json.loads((batch / "rejects.jsonl").read_text())["file"] == "notes.png"
    assert json.loads((run / "predict" / "executor_output.json").read_text())["artifacts"]["predictions"]["artifacts"][
        0
    ]["metadata"] == {"predicted": 1, "rejected": 1}
    [step] = run.glob("**/generalize")
    matrix = json.loads((step / "generalization" / "generalization.json").read_text())
    assert matrix["sources"] == ["mias"]  # the unlabelled DICOMs are pretraining data: not in the matrix
    assert "trained on mias" in (step / "report").read_text()
    summary = summarize_run(str(tmp_path / "kfp"))
    assert str(evaluation / "report.html") in summary and f"tensorboard --logdir {run}" in summary
    assert "generalization.html" in summary
