# The images of docker/ (make images REGISTRY=<region>-docker.pkg.dev/<project>/mammoflow).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:the images hold code and open dependencies, no data; Google-managed encryption suffices, set kms_key_name where policy asks for customer-managed keys
  location      = var.region
  repository_id = "mammoflow"
  description   = "mammoflow images: mammoflow-cpu, mammoflow-cuda, mammoflow-tpu"
  format        = "DOCKER"

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_project_service.required]
}
