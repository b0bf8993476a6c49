variable "project_id" {
  description = "Google Cloud project that runs mammoflow."
  type        = string
}

variable "region" {
  description = "Region of the bucket, the image repository, Vertex AI Pipelines and the optional GKE cluster."
  type        = string
  default     = "us-central1"
}

variable "bucket_name" {
  description = "Bucket for shards, pipeline roots, checkpoints and TensorBoard logs (globally unique)."
  type        = string
}

variable "checkpoint_versions_kept" {
  description = "Older versions of each checkpoint object kept (latest.pt is rewritten every few hundred steps)."
  type        = number
  default     = 3
}

variable "noncurrent_days" {
  description = "Days after which replaced object versions (old checkpoints, superseded event files) are deleted."
  type        = number
  default     = 30
}

variable "create_gke_cluster" {
  description = "Also create a GKE cluster with a TPU node pool for a self-managed Kubeflow Pipelines."
  type        = bool
  default     = false
}

variable "tpu_machine_type" {
  description = "Machine type of the TPU node pool (ct5lp-hightpu-4t: a TPU v5e host with 4 chips)."
  type        = string
  default     = "ct5lp-hightpu-4t"
}

variable "tpu_topology" {
  description = "TPU topology of the node pool's slice (2x2 for ct5lp-hightpu-4t; 4x4 for 16 chips on 4 hosts)."
  type        = string
  default     = "2x2"
}

variable "tpu_hosts" {
  description = "Hosts of the slice: its chips over the chips of one machine (2x2 on ct5lp-hightpu-4t: 1; 4x4: 4)."
  type        = number
  default     = 1
}

variable "gpu_machines" {
  description = "Machines of the GPU node pool: N of a step's --accelerator NAME:COUNTxN (0: no GPU pool)."
  type        = number
  default     = 0
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU node pool (a3-highgpu-8g: 8 H100s, as nvidia-h100:8 compiles to)."
  type        = string
  default     = "a3-highgpu-8g"
}

variable "gpu_type" {
  description = "GKE accelerator type of the GPU node pool; the pipeline's steps select nodes by it."
  type        = string
  default     = "nvidia-h100-80gb"
}

variable "gpus_per_machine" {
  description = "GPUs on each machine of the GPU node pool: COUNT of the step's --accelerator NAME:COUNTxN."
  type        = number
  default     = 8
}
