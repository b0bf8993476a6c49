# The one bucket: standardized shards, pipeline roots, checkpoints and TensorBoard logs.
resource "google_storage_bucket" "mammoflow" {
  #checkov:skip=CKV_GCP_62:access is recorded by Cloud Audit Logs (enable Data Access logs for Cloud Storage); usage-log buckets are a legacy alternative that would need a bucket of their own
  name                        = var.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Checkpoints are rewritten in place: keep a few older versions of each, for a while.
  lifecycle_rule {
    condition {
      num_newer_versions = var.checkpoint_versions_kept
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # A run's whole checkpoint folder moves to cheaper storage once it is a month old.
  lifecycle_rule {
    condition {
      age            = 30
      matches_prefix = ["runs/"]
      matches_suffix = [".pt"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  depends_on = [google_project_service.required]
}
