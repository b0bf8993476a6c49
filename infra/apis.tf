locals {
  apis = concat(
    ["aiplatform.googleapis.com", "artifactregistry.googleapis.com", "iam.googleapis.com", "storage.googleapis.com",
    "compute.googleapis.com"],
    var.create_gke_cluster ? ["container.googleapis.com", "tpu.googleapis.com"] : [],
  )
}

resource "google_project_service" "required" {
  for_each           = toset(local.apis)
  service            = each.value
  disable_on_destroy = false
}
