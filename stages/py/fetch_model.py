"""Fetch a hub model into the usual Hugging Face cache and print {"path", "revision"} as JSON.

Falls back to the local cache when the hub cannot be reached, so a model fetched once keeps working
offline. On failure prints {"error"} and exits 3, so the caller can say which model and why.
Usage: python fetch_model.py org/name
"""
import json
import sys

from huggingface_hub import snapshot_download
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

# Only what mlx-lm loads: configs, weights, tokenizers, chat templates (no PyTorch .bin duplicates).
PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(3)


def main(repo_id):
    try:
        path = snapshot_download(repo_id, allow_patterns=PATTERNS)
    except GatedRepoError:
        fail(f"{repo_id} is gated: accept its license on the hub, then run `hf auth login` (or set HF_TOKEN)")
    except RepositoryNotFoundError:
        fail(f"{repo_id} does not exist on the Hugging Face hub (or is private: log in with `hf auth login`)")
    except Exception as online_error:  # noqa: BLE001 - any other hub failure falls back to the cache
        try:
            path = snapshot_download(repo_id, allow_patterns=PATTERNS, local_files_only=True)
        except Exception:  # noqa: BLE001
            first_line = str(online_error).splitlines()[0] if str(online_error) else type(online_error).__name__
            fail(
                f"the Hugging Face hub could not be reached ({first_line}) and {repo_id} is not in the local cache; "
                f"connect and build again, or download it elsewhere and set model: to the folder"
            )
    # Snapshot folders are named by the commit they hold.
    print(json.dumps({"path": path, "revision": path.rstrip("/").split("/")[-1]}))


main(sys.argv[1])
