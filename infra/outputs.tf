output "bucket" {
  description = "Pass as gs://<bucket>/... to --output, --out and --pipeline-root."
  value       = google_storage_bucket.mammoflow.name
}

output "registry" {
  description = "REGISTRY for make images and make compile: the images are <registry>/mammoflow-{cpu,cuda,tpu}:<tag>."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "pipeline_runner" {
  description = "Service account that submits pipeline jobs."
  value       = google_service_account.pipeline_runner.email
}

output "trainer" {
  description = "Service account the pipeline steps run as (--service-account)."
  value       = google_service_account.trainer.email
}
