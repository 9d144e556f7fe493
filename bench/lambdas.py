"""The Lambdas as `sam build` packs them: unzipped size and cold-start import time of each handler.

    make sam-build && python bench/lambdas.py [--runs 5]

For each function of template.yaml: the size of its own folder in .aws-sam/build, of the layers it
uses, and the median over fresh interpreters of the time to import its handler module (what a cold
start pays before the first event), with only the function, its layers and the packages the
python3.11 runtime itself provides (boto3 and its dependencies) on the path, and every environment
variable the template gives it set to its literal value or a placeholder. The API function reads
its page-token secret while it starts: here from a moto server (one local HTTP call, where Lambda
makes one to Secrets Manager). Goals (issue 13): <= 50 MB per function and
<= 1 s of import.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

from tools.prune_layer import runtime_site

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def import_seconds(module: str, path: list[Path], env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    # No bytecode written: /opt and /var/task are read-only on Lambda, so what the layer does not ship
    # is compiled again at every cold start (and writing it here would grow the measured layer).
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(map(str, path)),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    out = subprocess.run([sys.executable, "-S", "-c", code], env=clean, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"importing {module} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip())


def secrets_server() -> tuple[Any, dict[str, str]]:
    """A moto server holding the page-token secret, and the variables that point the functions at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_ENDPOINT_URL_SECRETS_MANAGER": url}
    client = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1", **_keys(env))
    arn = client.create_secret(Name="page-token", SecretString="0" * 64)["ARN"]
    return server, {**env, "PAGE_TOKEN_SECRET_ARN": arn}


def _keys(env: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}


def main(args: argparse.Namespace) -> None:
    template = cfn_yaml.load(str(BUILD / "template.yaml"))
    resources: dict[str, Any] = template["Resources"]
    common = template.get("Globals", {}).get("Function", {})
    placeholders = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "bench"}
    print(f"{'function':<24} {'code MB':>8} {'layers MB':>10} {'import s (median)':>18}")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not one line per request
    server, aws = secrets_server()
    with tempfile.TemporaryDirectory() as tmp:
        runtime = runtime_site(Path(tmp))
        for name, resource in resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource["Properties"]
            layers = [BUILD / layer["Ref"] / "python" for layer in props.get("Layers", common.get("Layers", []))]
            variables = {**common.get("Environment", {}).get("Variables", {})}
            variables.update(props.get("Environment", {}).get("Variables", {}))
            # Literal values as the template sets them; references (to resources, parameters) as placeholders.
            env = {**placeholders, **{k: v if isinstance(v, str) else "365" for k, v in variables.items()}, **aws}
            module = props["Handler"].rsplit(".", 1)[0]
            path = [BUILD / name, *layers, runtime]
            times = [import_seconds(module, path, env) for _ in range(args.runs)]
            print(
                f"{name:<24} {size_mb(BUILD / name):>8.1f} {sum(size_mb(layer) for layer in layers):>10.1f} "
                f"{statistics.median(times):>18.2f}"
            )
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per handler (default: %(default)s)")
    main(parser.parse_args())
