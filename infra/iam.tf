# Two identities, each with the least it needs:
# - the pipeline runner submits Vertex AI pipeline jobs and acts as the trainer for their steps;
# - the trainer (every pipeline step) reads and writes objects in the one bucket and pulls the images.
# Storage access is granted on the bucket, never project-wide.
resource "google_service_account" "pipeline_runner" {
  account_id   = "mammoflow-runner"
  display_name = "mammoflow pipeline runner"
}

resource "google_service_account" "trainer" {
  account_id   = "mammoflow-trainer"
  display_name = "mammoflow pipeline steps"
}

resource "google_storage_bucket_iam_member" "trainer_objects" {
  bucket = google_storage_bucket.mammoflow.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.trainer.email}"
}

resource "google_storage_bucket_iam_member" "runner_objects" {
  bucket = google_storage_bucket.mammoflow.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.pipeline_runner.email}"
}

resource "google_artifact_registry_repository_iam_member" "trainer_pulls" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.trainer.email}"
}

# Creating pipeline jobs has no narrower scope than the project.
resource "google_project_iam_member" "runner_submits_jobs" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.pipeline_runner.email}"
}

resource "google_service_account_iam_member" "runner_acts_as_trainer" {
  service_account_id = google_service_account.trainer.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.pipeline_runner.email}"
}

# On the GKE cluster, Kubeflow steps run as the Kubernetes service account kubeflow/mammoflow-trainer,
# which Workload Identity lets act as the trainer (annotate it: iam.gke.io/gcp-service-account).
resource "google_service_account_iam_member" "kubeflow_steps_as_trainer" {
  count              = var.create_gke_cluster ? 1 : 0
  service_account_id = google_service_account.trainer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[kubeflow/mammoflow-trainer]"
}
