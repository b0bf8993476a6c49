"""The Terraform in infra/, checked without Terraform: every file parses (python-hcl2), the resources hold
what the README promises, and checkov leaves no failed check and no skip without its reason."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _plain(value):
    """HCL values as python-hcl2 gives them, with string quotes and block markers taken off."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    return value


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as f:
            parsed = _plain(hcl2.load(f))
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found[(kind, name)] = body
    return found


def test_every_terraform_file_parses_and_declares_its_variables():
    files = sorted(INFRA.glob("*.tf"))
    assert {p.name for p in files} >= {
        "versions.tf",
        "variables.tf",
        "storage.tf",
        "registry.tf",
        "iam.tf",
        "apis.tf",
        "gke.tf",
        "outputs.tf",
    }
    text = "".join(p.read_text() for p in files)
    with (INFRA / "variables.tf").open() as f:
        declared = {name for block in _plain(hcl2.load(f))["variable"] for name in block}
    used = set(re.findall(r"\bvar\.(\w+)", text))
    assert used <= declared, used - declared


def test_the_bucket_is_private_versioned_and_prunes_old_checkpoints(resources):
    bucket = resources[("google_storage_bucket", "mammoflow")]
    assert bucket["uniform_bucket_level_access"] is True and bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    actions = [rule["action"][0]["type"] for rule in bucket["lifecycle_rule"]]
    assert actions.count("Delete") >= 2 and "SetStorageClass" in actions
    assert any("num_newer_versions" in rule["condition"][0] for rule in bucket["lifecycle_rule"])


def test_service_accounts_get_storage_on_the_one_bucket_only(resources):
    accounts = {name for kind, name in resources if kind == "google_service_account"}
    assert accounts == {"pipeline_runner", "trainer"}
    project_roles = [body["role"] for (kind, _), body in resources.items() if kind.startswith("google_project_iam")]
    assert project_roles == ["roles/aiplatform.user"]  # nothing else project-wide, no storage role there
    bucket_grants = [body for (kind, _), body in resources.items() if kind == "google_storage_bucket_iam_member"]
    assert {grant["role"] for grant in bucket_grants} == {"roles/storage.objectUser"}
    assert all(grant["bucket"] == "${google_storage_bucket.mammoflow.name}" for grant in bucket_grants)
    assert not any(
        "admin" in body.get("role", "").lower() or "owner" in body.get("role", "").lower()
        for (kind, _), body in resources.items()
        if kind.endswith("iam_member")
    )


def test_registry_apis_and_the_optional_tpu_cluster(resources):
    assert resources[("google_artifact_registry_repository", "images")]["format"] == "DOCKER"
    with (INFRA / "apis.tf").open() as f:
        apis = str(_plain(hcl2.load(f)))
    for api in ("aiplatform", "artifactregistry", "storage", "iam", "container", "tpu"):
        assert f"{api}.googleapis.com" in apis
    pool = resources[("google_container_node_pool", "pools")]
    gke = (INFRA / "gke.tf").read_text()
    assert "nodes = var.tpu_hosts }" in gke and "gpus = var.gpus_per_machine, nodes = var.gpu_machines }" in gke
    assert "if var.create_gke_cluster && pool.nodes > 0" in gke  # no GPU pool unless machines are asked for
    assert pool["node_count"] == "${each.value.nodes}"  # a slice of several hosts, or several machines: a node each
    assert pool["dynamic"][0]["placement_policy"]["content"][0]["tpu_topology"] == "${placement_policy.value}"
    [accelerator] = pool["node_config"][0]["dynamic"]
    gpus = accelerator["guest_accelerator"]["content"][0]
    assert gpus["type"] == "${guest_accelerator.value.gpu_type}" and gpus["count"] == "${guest_accelerator.value.gpus}"
    assert gpus["gpu_driver_installation_config"][0]["gpu_driver_version"] == "LATEST"
    assert pool["node_config"][0]["workload_metadata_config"][0]["mode"] == "GKE_METADATA"


def test_the_gpu_pool_by_default_is_what_the_pipeline_asks_for_nvidia_h100_by_8():
    """Its nodes carry the label a step's node selector names, and are the machine such a step compiles to."""
    from mammolibs.pipeline.hardware import ACCELERATORS, StepHardware, node_selectors

    with (INFRA / "variables.tf").open() as f:
        defaults = {
            name: body.get("default") for block in _plain(hcl2.load(f))["variable"] for name, body in block.items()
        }
    h100 = StepHardware(ACCELERATORS["nvidia-h100"], defaults["gpus_per_machine"], machines=4)
    assert node_selectors(h100) == {"cloud.google.com/gke-accelerator": defaults["gpu_type"]}
    assert h100.host_machine == defaults["gpu_machine_type"]
    assert defaults["gpu_machines"] == 0


def test_checkov_finds_no_failed_check_and_every_skip_says_why(tmp_path):
    checkov = os.environ.get("MAMMOFLOW_CHECKOV") or shutil.which("checkov")
    if not checkov:
        pytest.fail("checkov not found: run 'make test' (it builds .venv-tools) or set MAMMOFLOW_CHECKOV")
    done = subprocess.run(
        [
            checkov,
            "-d",
            str(INFRA),
            "--framework",
            "terraform",
            "--compact",
            "-o",
            "json",
            "--var-file",
            str(INFRA / "example.tfvars"),
        ],  # the GKE cluster included
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, failed
    scanned = {c["resource"].split(".")[0] for c in report["results"]["passed_checks"]}
    assert (
        summary["passed"] >= 30
        and {"google_container_cluster", "google_container_node_pool", "google_storage_bucket"} <= scanned
    )
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"


def test_the_kubeflow_role_lets_a_step_start_watch_and_stop_the_jobs_of_its_machines():
    from mammolibs.pipeline.hardware import ACCELERATORS, StepHardware
    from mammolibs.pipeline.jobs import cluster_job
    from mammolibs.pipeline.launcher import PLURALS

    role, binding = yaml.safe_load_all((INFRA / "kubeflow-jobs.yaml").read_text())
    granted = {
        (group, kind): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for kind in rule["resources"]
    }
    several = (StepHardware(ACCELERATORS["tpu-v5e"], 16), StepHardware(ACCELERATORS["nvidia-h100"], 8, machines=2))
    started = {
        (job["apiVersion"].split("/")[0], PLURALS[job["kind"]]) for job in (cluster_job(h, "i") for h in several)
    }
    assert started == set(granted)  # what the launcher starts, and nothing else
    assert all(verbs == {"create", "get", "delete"} for verbs in granted.values())  # launcher.run_job's calls
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner"}]
