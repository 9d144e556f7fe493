"""The local stack: moto (server mode) + the local SageMaker endpoint + the two Lambdas, from template.yaml.

    python -m local_stack.stack --model build/model/model.tar.gz     # `make local`: runs until Ctrl-C

Writes ``.local/outputs.json``: the deployed stack's Output keys, plus AwsEndpointUrl (moto), the
local demo user's credentials and the DICOM receiver's DicomHost, DicomPort and DicomAETitle, for
scripts and tests to use as they would use CloudFormation outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import secrets
import shutil
import signal
import tempfile
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from local_stack.client_site import LOCAL_AUTH_FLOW, StaticSite, client_config
from local_stack.faults import FAULTY_ENDPOINT_READ_TIMEOUT_S, FaultPlan, FaultSwitch
from local_stack.gateway import CognitoVerifier, LocalGateway
from local_stack.harness import Harness
from local_stack.poller import SqsPoller
from local_stack.runner import FunctionRunner, RunnerPool
from local_stack.template import StackContext, Template
from local_stack.wsgi import BackgroundServer
from model.serving.serve import EndpointApp, load_predictor
from pacs.config import ReceiverConfig
from pacs.receiver import Receiver
from pacs.spool import Spool
from pacs.uploader import S3Store, Uploader

logger = logging.getLogger(__name__)

DEMO_USER = "demo@example.com"
DICOM_AE_TITLE: Final = "XRAYCLASSIFY"
# Who may send to the local receiver: Orthanc's and dcmtk storescu's default AE titles.
DICOM_SENDERS: Final = ("ORTHANC", "STORESCU")
# The web client's development server: the local stack's AllowedOrigin parameter.
LOCAL_ORIGIN = "http://localhost:5173"
OUTPUTS = Path(".local/outputs.json")
# As many warm API containers as the gateway has worker threads (local_stack.wsgi.BackgroundServer).
API_CONTAINERS = 4
CREDENTIALS: Final = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def pacs_parameters(destination: str | None) -> dict[str, str]:
    """``AE@host:port`` as the template's PacsDestination* parameters; none for None."""
    if not destination:
        return {}
    match = re.fullmatch(r"([A-Za-z0-9_ .-]{1,16})@([^:@\s]+):(\d{1,5})", destination)
    if match is None or not 0 < int(match[3]) < 65536:
        raise ValueError(f"{destination!r} is not AE@host:port (e.g. ORTHANC@127.0.0.1:4242)")
    return {
        "PacsDestinationAETitle": match[1],
        "PacsDestinationHost": match[2],
        "PacsDestinationPort": match[3],
        "PacsCallingAETitle": DICOM_AE_TITLE,
    }


class LocalDeployment:
    """The SAM stack deployed on this machine: moto in server mode, the local endpoint, the functions
    behind pollers and the gateway, all created from template.yaml. (Not the LocalStack product: the
    AWS services are moto's.)"""

    def __init__(
        self,
        model_path: Path,
        batching_window_s: float = 0.5,
        retry_delay_s: int = 1,
        with_poller: bool = True,
        context: StackContext | None = None,
        endpoint_app: Any = None,
        concurrency: int = 2,
        faults: FaultPlan | None = None,
        visibility_timeout_s: int | None = None,
        client_dir: Path | None = None,
        dicom_port: int | None = None,
        dicom_allowed_aes: tuple[str, ...] = DICOM_SENDERS,
        pacs_destination: str | None = None,
    ) -> None:
        self.context = context or StackContext()
        # The DICOM receiver (pacs/), on this port (0: any free one); None: not started.
        self.dicom_port = dicom_port
        self.dicom_allowed_aes = dicom_allowed_aes
        self.dicom: Receiver | None = None
        # Where the Structured Reports are pushed ("AE@host:port"): the template's PacsDestination*.
        parameters = {"AllowedOrigin": LOCAL_ORIGIN, **pacs_parameters(pacs_destination)}
        self.template = Template(context=self.context, parameters=parameters)
        self.model_path = model_path
        self.batching_window_s = batching_window_s
        self.retry_delay_s = retry_delay_s
        self.with_poller = with_poller
        self.concurrency = concurrency
        self.faults = faults or FaultPlan()
        # Redelivery in seconds instead of the template's minutes: for soaks and fault runs.
        self.visibility_timeout_s = visibility_timeout_s
        if visibility_timeout_s is not None:
            self.retry_delay_s = visibility_timeout_s
        self.pollers: list[SqsPoller] = []
        self._endpoint_app = endpoint_app
        self.demo_username = DEMO_USER
        self.demo_password = "Local-" + secrets.token_urlsafe(12) + "1!"
        self._closers: list[Any] = []
        # The built web client (client/dist), served at LOCAL_ORIGIN, the API's allowed origin.
        self.client_dir = client_dir
        self.client_url: str | None = None

    # -- clients ----------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        # boto3-stubs types a client per literal service name; this one is a runtime string.
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.aws_url,
            region_name=self.context.region,
            config=Config(retries={"max_attempts": 2}),
            **CREDENTIALS,
        )

    def resource(self, service: str) -> Any:
        return boto3.resource(  # type: ignore[call-overload]
            service, endpoint_url=self.aws_url, region_name=self.context.region, **CREDENTIALS
        )

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalDeployment:
        self._start_moto()
        self._start_endpoint()
        self._create_resources()
        self._start_functions()
        self._start_client()
        self._start_dicom()
        return self

    def stop(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_moto(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.aws_url = f"http://{host}:{port}"
        self._closers.append(self._moto.stop)

    def _start_endpoint(self) -> None:
        app = self._endpoint_app or FaultSwitch(EndpointApp(load_predictor(self.model_path)), self.faults)
        self.endpoint = BackgroundServer(app).__enter__()
        self._closers.append(self.endpoint.close)

    def _start_client(self) -> None:
        if self.client_dir is None:
            return
        outputs = self.outputs()
        config = client_config(outputs, self.context.region, cognito_endpoint=self.aws_url)
        port = int(LOCAL_ORIGIN.rsplit(":", 1)[1])
        site = BackgroundServer(StaticSite(self.client_dir, config), port=port).__enter__()
        self._closers.append(site.close)
        self.client_url = LOCAL_ORIGIN

    # -- resources from the template --------------------------------------------------------------
    def _name(self, logical_id: str) -> str:
        return f"{self.context.stack_name}-{logical_id}"

    def _create_resources(self) -> None:
        t = self.template
        ctx = self.context
        kms = self.client("kms")
        for key in t.of_type("AWS::KMS::Key"):
            meta = kms.create_key(Description=t.properties(key).get("Description", key))["KeyMetadata"]
            t.register(key, meta["KeyId"], Arn=meta["Arn"])
        self._create_queues()
        dynamodb = self.client("dynamodb")
        for table in t.of_type("AWS::DynamoDB::Table"):
            props = t.properties(table)
            name = self._name(table)
            spec = {
                k: props[k]
                for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
                if k in props
            }
            dynamodb.create_table(TableName=name, **spec)
            if "TimeToLiveSpecification" in props:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])
            t.register(table, name, Arn=f"arn:aws:dynamodb:{ctx.region}:{ctx.account_id}:table/{name}")
        secretsmanager = self.client("secretsmanager")
        for secret in t.of_type("AWS::SecretsManager::Secret"):
            # GenerateSecretString's job: a random value only this stack knows.
            arn = secretsmanager.create_secret(Name=self._name(secret), SecretString=secrets.token_urlsafe(48))["ARN"]
            t.register(secret, arn)
        sns = self.client("sns")
        for topic in t.of_type("AWS::SNS::Topic"):
            arn = sns.create_topic(Name=self._name(topic))["TopicArn"]
            t.register(topic, arn, TopicName=self._name(topic))
        self._create_user_pool()
        self._create_sagemaker()
        self._create_buckets()
        for function in t.of_type("AWS::Serverless::Function"):
            t.register(function, self._name(function))
        for api in t.of_type("AWS::Serverless::Api"):
            t.register(api, "local")
        # Log groups, IAM, autoscaling...: nothing to emulate, but their names must resolve.
        for logical_id in t.resources:
            if logical_id not in t.physical and t.included(logical_id):
                t.register(
                    logical_id,
                    self._name(logical_id),
                    Arn=f"arn:aws:local:{ctx.region}:{ctx.account_id}:{logical_id}",
                )

    def _create_queues(self) -> None:
        t, sqs = self.template, self.client("sqs")
        queues = t.of_type("AWS::SQS::Queue")
        for queue in queues:  # every queue first: redrive policies refer to one another
            url = sqs.create_queue(QueueName=self._name(queue))["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            t.register(queue, url, Arn=arn, QueueName=self._name(queue))
        for queue in queues:
            props = t.properties(queue)
            attributes: dict[str, str] = {
                k: str(props[k])
                for k in ("VisibilityTimeout", "MessageRetentionPeriod", "KmsMasterKeyId")
                if k in props
            }
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            if self.visibility_timeout_s is not None:
                attributes["VisibilityTimeout"] = str(self.visibility_timeout_s)
            sqs.set_queue_attributes(QueueUrl=t.ref(queue), Attributes=attributes)
        # The local subscriber that lets the demo read the notifications (not part of the template).
        url = sqs.create_queue(QueueName=self._name("Notifications"))["QueueUrl"]
        self.notifications_queue_url = url

    def _create_user_pool(self) -> None:
        t, idp = self.template, self.client("cognito-idp")
        for pool in t.of_type("AWS::Cognito::UserPool"):
            props = t.properties(pool)
            policy = {
                k: int(v) if str(v).isdigit() else v
                for k, v in props.get("Policies", {}).get("PasswordPolicy", {}).items()
            }
            created = idp.create_user_pool(
                PoolName=self._name(pool),
                Policies={"PasswordPolicy": policy},
                UsernameAttributes=props.get("UsernameAttributes", []),
            )["UserPool"]
            t.register(pool, created["Id"], Arn=created["Arn"])
        for group in t.of_type("AWS::Cognito::UserPoolGroup"):
            props = t.properties(group)
            idp.create_group(UserPoolId=props["UserPoolId"], GroupName=props["GroupName"])
            t.register(group, props["GroupName"])
        # The demo user reads the shared results too, so `make demo` shows its bucket drops via the API.
        self.create_user(DEMO_USER, groups=(t.parameter("ReadersGroupName"),), password=self.demo_password)
        for client in t.of_type("AWS::Cognito::UserPoolClient"):
            props = t.properties(client)
            created = idp.create_user_pool_client(
                UserPoolId=props["UserPoolId"],
                ClientName=self._name(client),
                # The template's flows, and the password flow the harness and the local web client use
                # against moto (client_site.LOCAL_AUTH_FLOW); AWS gets SRP only.
                ExplicitAuthFlows=sorted({*props["ExplicitAuthFlows"], f"ALLOW_{LOCAL_AUTH_FLOW}"}),
                GenerateSecret=False,
            )["UserPoolClient"]
            t.register(client, created["ClientId"])

    def create_user(self, username: str, groups: tuple[str, ...] = (), password: str | None = None) -> str:
        """An admin-created user of the pool (as `aws cognito-idp admin-create-user`); returns its password."""
        idp, pool = self.client("cognito-idp"), self.template.ref("UserPool")
        password = password or "Local-" + secrets.token_urlsafe(12) + "1!"
        idp.admin_create_user(
            UserPoolId=pool,
            Username=username,
            MessageAction="SUPPRESS",
            TemporaryPassword="Temp-" + secrets.token_urlsafe(12) + "1!",
        )
        idp.admin_set_user_password(UserPoolId=pool, Username=username, Password=password, Permanent=True)
        for group in groups:
            idp.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=group)
        return password

    def _create_sagemaker(self) -> None:
        t, sagemaker = self.template, self.client("sagemaker")
        if not t.condition("CreateEndpoint"):
            return
        role = f"arn:aws:iam::{self.context.account_id}:role/{self._name('SageMakerExecutionRole')}"
        t.register("SageMakerExecutionRole", role, Arn=role)
        model = sagemaker.create_model(
            ModelName=self._name("XrayModel"),
            ExecutionRoleArn=role,
            PrimaryContainer={"Image": "local", "ModelDataUrl": f"file://{self.model_path}"},
        )
        t.register("XrayModel", self._name("XrayModel"), ModelName=self._name("XrayModel"), Arn=model["ModelArn"])
        props = t.properties("XrayEndpointConfig")
        config_name = self._name("XrayEndpointConfig")
        sagemaker.create_endpoint_config(EndpointConfigName=config_name, ProductionVariants=props["ProductionVariants"])
        t.register("XrayEndpointConfig", config_name, EndpointConfigName=config_name)
        name = self._name("XrayEndpoint")
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config_name)
        t.register("XrayEndpoint", name, EndpointName=name)

    def _create_buckets(self) -> None:
        t, s3 = self.template, self.client("s3")
        for bucket in t.of_type("AWS::S3::Bucket"):
            name = t.resolve(t.resources[bucket]["Properties"]["BucketName"])
            s3.create_bucket(Bucket=name)
            t.register(bucket, name, Arn=f"arn:aws:s3:::{name}")
            props = t.properties(bucket)
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
            queue_configs = [
                {
                    "QueueArn": q["Queue"],
                    "Events": [q["Event"]],
                    "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
                }
                for q in props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
            ]
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": queue_configs}
            )
        # Bucket policies are not applied: the template's deny-non-TLS statement would (rightly) refuse
        # every call, and the local stack speaks plain HTTP on loopback. Tests check the policy itself.

    # -- functions --------------------------------------------------------------------------------
    def lambda_environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint.url,
            "AWS_DEFAULT_REGION": self.context.region,
            "AWS_REGION": self.context.region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            **self._fault_environment(),
        }

    def _fault_environment(self) -> dict[str, str]:
        environment = {}
        if self.faults.probabilities.get("slow_endpoint"):
            environment["ENDPOINT_READ_TIMEOUT_S"] = str(FAULTY_ENDPOINT_READ_TIMEOUT_S)
        if self.visibility_timeout_s is not None:
            # A crashed delivery's notification lease must lapse before its retries run out.
            environment["NOTIFY_LEASE_S"] = str(self.visibility_timeout_s)
        return environment

    def runner(self, logical_id: str) -> FunctionRunner:
        # Injected S3 timeouts and crashes hit the batch function only.
        on_load = self.faults.install if logical_id == "ClassifyBatchFunction" else None
        return FunctionRunner(self.template, logical_id, self.lambda_environment(), on_load=on_load)

    def _start_functions(self) -> None:
        t = self.template
        sns, sqs = self.client("sns"), self.client("sqs")
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.notifications_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(
            TopicArn=t.ref("ResultsTopic"),
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        self.batch = self.runner("ClassifyBatchFunction")
        self.api = RunnerPool(lambda: self.runner("ApiFunction"), API_CONTAINERS)
        if self.with_poller:
            for function in t.of_type("AWS::Serverless::Function"):
                if t.has_sqs_event(function):
                    self._start_pollers(function)
        pool, client = t.ref("UserPool"), t.ref("UserPoolClient")
        verifier = CognitoVerifier(
            f"{self.aws_url}/{pool}/.well-known/jwks.json",
            f"https://cognito-idp.{self.context.region}.amazonaws.com/{pool}",
            client,
        )
        api_props = t.properties("XrayApi")
        gateway = LocalGateway(
            self.api,
            t.api_routes("ApiFunction"),
            verifier,
            api_props["StageName"],
            api_props.get("BinaryMediaTypes", []),
            t.parameter("AllowedOrigin"),
        )
        server = BackgroundServer(gateway).__enter__()
        self.api_url = f"{server.url}/{api_props['StageName']}"
        self._closers.append(server.close)

    def _start_pollers(self, function: str) -> None:
        t, sqs = self.template, self.client("sqs")
        mapping = t.resolve(t.sqs_event(function))
        queue = next(q for q in t.of_type("AWS::SQS::Queue") if t.physical[q]["Arn"] == mapping["Queue"])
        # Like Lambda scaling out: concurrent pollers, each with its own "container" (module instance),
        # capped by the template's MaximumConcurrency.
        workers = min(self.concurrency, int(mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 1000)))
        for _ in range(max(1, workers)):
            poller = SqsPoller(
                sqs,
                t.ref(queue),
                mapping["Queue"],
                self.runner(function),
                int(mapping["BatchSize"]),
                float(mapping.get("MaximumBatchingWindowInSeconds", 0)) and self.batching_window_s,
                self.retry_delay_s,
                self.context.region,
            )
            poller.start()
            self.pollers.append(poller)
            self._closers.append(poller.stop)

    def batch_invocations(self) -> int:
        return sum(p.invocations for p in self.pollers)

    def pollers_busy(self) -> bool:
        return any(p.busy.is_set() for p in self.pollers)

    @cached_property
    def harness(self) -> Harness:
        """The client side: uploads, results, notifications, tokens (``local_stack.harness``)."""
        return Harness(self)

    # -- what a user of the stack needs -----------------------------------------------------------
    def _start_dicom(self) -> None:
        """The DICOM receiver, spooling to a folder of this run and uploading into the upload bucket."""
        if self.dicom_port is None:
            return
        spool_dir = Path(tempfile.mkdtemp(prefix="xray-dicom-spool-"))
        config = ReceiverConfig.from_env(
            {
                "XRAY_DICOM_AE_TITLE": DICOM_AE_TITLE,
                "XRAY_DICOM_HOST": "127.0.0.1",
                "XRAY_DICOM_PORT": str(self.dicom_port),
                "XRAY_DICOM_ALLOWED_AES": ",".join(self.dicom_allowed_aes),
                "XRAY_DICOM_SPOOL": str(spool_dir),
                "XRAY_UPLOAD_BUCKET": self.template.ref("UploadBucket"),
                "XRAY_UPLOAD_PREFIX": self.template.parameter("UploadPrefix"),
            }
        )
        spool = Spool(config.spool)
        uploader = Uploader(spool, S3Store(self.client("s3"), config.bucket), backoff=0.2, max_backoff=2.0).start()
        self.dicom = Receiver(config, spool, uploader)
        self.dicom.start()
        self._closers.append(lambda: shutil.rmtree(spool_dir, ignore_errors=True))
        self._closers.append(uploader.stop)
        self._closers.append(self.dicom.stop)

    def outputs(self) -> dict[str, str]:
        outputs = self.template.outputs()
        outputs.update(
            {
                "ApiUrl": self.api_url,
                "AwsEndpointUrl": self.aws_url,
                "SageMakerRuntimeUrl": self.endpoint.url,
                "DemoUsername": DEMO_USER,
                "DemoPassword": self.demo_password,
                "Region": self.context.region,
            }
        )
        if self.client_url is not None:
            outputs["ClientUrl"] = self.client_url
        if self.dicom is not None:
            outputs.update(
                {"DicomHost": "127.0.0.1", "DicomPort": str(self.dicom.port), "DicomAETitle": DICOM_AE_TITLE}
            )
        return outputs

    def write_outputs(self, path: Path = OUTPUTS) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.outputs(), indent=2) + "\n")
        path.chmod(0o600)
        return path


def main(args: argparse.Namespace) -> None:
    faults = FaultPlan.parse(args.faults, args.seed)
    with LocalDeployment(
        args.model,
        faults=faults,
        visibility_timeout_s=args.visibility_timeout,
        client_dir=args.client,
        dicom_port=args.dicom_port if args.dicom_port >= 0 else None,
        pacs_destination=args.pacs_destination,
    ) as stack:
        path = stack.write_outputs(args.outputs)
        print(f"local stack running; outputs in {path} (Ctrl-C to stop)", flush=True)
        print(
            json.dumps({k: v for k, v in stack.outputs().items() if k != "DemoPassword"}, indent=2),
            flush=True,
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz or its unpacked directory")
    parser.add_argument(
        "--outputs", type=Path, default=OUTPUTS, help="where to write the outputs (default: %(default)s)"
    )
    parser.add_argument(
        "--faults",
        default="",
        help="faults to inject, comma-separated name=probability: endpoint_5xx, slow_endpoint, s3_timeout, crash "
        "(default: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default: %(default)s)")
    parser.add_argument(
        "--dicom-port",
        type=int,
        default=11112,
        help=f"the DICOM receiver's port (AE title {DICOM_AE_TITLE}; senders {', '.join(DICOM_SENDERS)}); "
        "-1: no receiver (default: %(default)s)",
    )
    parser.add_argument(
        "--pacs-destination",
        default=None,
        metavar="AE@HOST:PORT",
        help="push each DICOM image's Structured Report to this PACS (C-STORE; the template's "
        "PacsDestination* parameters), e.g. ORTHANC@127.0.0.1:4242 (default: none)",
    )
    parser.add_argument(
        "--client",
        type=Path,
        default=None,
        help="serve this built web client (client/dist) at ClientUrl (default: none)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        help="queue visibility timeout in seconds, so that redelivery happens in seconds (default: the template's)",
    )
    main(parser.parse_args())
