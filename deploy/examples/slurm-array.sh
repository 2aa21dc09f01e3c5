#!/bin/bash
# ffsr segments as a Slurm job array: array task I runs segment I of the plan in
# /shared/videos/.film_x2.mkv.ffsr-segments (`ffsr segments work` reads SLURM_ARRAY_TASK_ID). Made by
# `ffsr segments render-slurm`; plan first with `ffsr upscale … --segments N --executor none`,
# submit with `sbatch`, join after with `ffsr upscale … --resume`. Every node must see the
# work folder, the input and the models at the same paths (docs/segments.md).
#SBATCH --job-name=ffsr-film-x2-mkv
#SBATCH --array=0-7%4
#SBATCH --cpus-per-task=1
#SBATCH --gres=gpu:1
#SBATCH --output=/shared/videos/.film_x2.mkv.ffsr-segments/slurm-%A_%a.out
exec ffsr segments work /shared/videos/.film_x2.mkv.ffsr-segments
