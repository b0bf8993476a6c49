project_id         = "example-project"
bucket_name        = "example-mammoflow"
create_gke_cluster = true
gpu_machines       = 2
