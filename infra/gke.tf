# Optional (create_gke_cluster = true): a GKE cluster for a self-managed Kubeflow Pipelines, with a
# CPU pool for the light steps, a TPU v5e pool and an optional GPU pool for training. Vertex AI Pipelines
# needs none of this.
resource "google_container_cluster" "kubeflow" {
  count    = var.create_gke_cluster ? 1 : 0
  name     = "mammoflow"
  location = var.region

  #checkov:skip=CKV_GCP_65:RBAC through Google Groups needs a Workspace group of the organisation; bind users with Kubernetes RBAC instead, or add authenticator_groups_config once the group exists
  remove_default_node_pool = true
  initial_node_count          = 1
  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true
  networking_mode             = "VPC_NATIVE"
  ip_allocation_policy {}
  node_config {
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  release_channel {
    channel = "REGULAR"
  }
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = "172.16.0.32/28"
  }
  master_authorized_networks_config {}
  network_policy {
    enabled = true
  }
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }
  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }
  resource_labels = {
    app = "mammoflow"
  }

  depends_on = [google_project_service.required]
}

locals {
  pools = {
    cpu = { machine_type = "e2-standard-8", tpu_topology = null, gpu_type = null, gpus = 0, nodes = 1 }
    tpu = { machine_type = var.tpu_machine_type, tpu_topology = var.tpu_topology, gpu_type = null, gpus = 0, nodes = var.tpu_hosts }
    gpu = { machine_type = var.gpu_machine_type, tpu_topology = null, gpu_type = var.gpu_type, gpus = var.gpus_per_machine, nodes = var.gpu_machines }
  }
  node_pools = { for name, pool in local.pools : name => pool if var.create_gke_cluster && pool.nodes > 0 }
}

# A CPU pool for the light steps, a TPU pool (one slice of tpu_topology, tpu_hosts hosts) and a GPU pool
# (gpu_machines machines of gpus_per_machine GPUs; none by default) for training. A pool of 0 nodes is left out.
resource "google_container_node_pool" "pools" {
  for_each   = local.node_pools
  name       = each.key
  cluster    = google_container_cluster.kubeflow[0].id
  node_count = each.value.nodes

  management {
    auto_repair  = true
    auto_upgrade = true
  }
  dynamic "placement_policy" {
    for_each = each.value.tpu_topology == null ? [] : [each.value.tpu_topology]
    content {
      type         = "COMPACT"
      tpu_topology = placement_policy.value
    }
  }
  node_config {
    machine_type    = each.value.machine_type
    dynamic "guest_accelerator" {
      for_each = each.value.gpu_type == null ? [] : [each.value]
      content {
        type  = guest_accelerator.value.gpu_type
        count = guest_accelerator.value.gpus
        gpu_driver_installation_config {
          gpu_driver_version = "LATEST"
        }
      }
    }
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.trainer.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}
