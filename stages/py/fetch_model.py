"""Fetch a hub model into the usual Hugging Face cache and print {"path", "revision"} as JSON.

Falls back to the local cache when the hub cannot be reached, so a model fetched once keeps working
offline. On failure prints {"error"} and exits 3, so the caller can say which model and why.
Usage: python fetch_model.py org/name
"""
import json
import sys

from huggingface_hub import snapshot_download

# Only what mlx-lm loads: configs, weights, tokenizers, chat templates (no PyTorch .bin duplicates).
PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]


def main(repo_id):
    try:
        path = snapshot_download(repo_id, allow_patterns=PATTERNS)
    except Exception as online_error:  # noqa: BLE001 - any hub failure falls back to the cache
        try:
            path = snapshot_download(repo_id, allow_patterns=PATTERNS, local_files_only=True)
        except Exception:  # noqa: BLE001
            print(json.dumps({"error": f"the Hugging Face hub could not be reached and {repo_id} is not in the local cache ({type(online_error).__name__}: {online_error})"}))
            sys.exit(3)
    # Snapshot folders are named by the commit they hold.
    print(json.dumps({"path": path, "revision": path.rstrip("/").split("/")[-1]}))


main(sys.argv[1])
