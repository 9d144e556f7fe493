"""Read template.yaml and resolve its intrinsic functions against the local stack's resources.

The local stack creates its resources *from* the template (names, queue settings, table keys and
indexes, function environments), so there is no second, hand-kept description to drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
_NO_VALUE: Final = object()  # what {"Ref": "AWS::NoValue"} resolves to, until its key is dropped
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass
class StackContext:
    stack_name: str = "xray-covid-local"
    account_id: str = "123456789012"
    region: str = "us-east-1"
    partition: str = "aws"


@dataclass
class Template:
    path: Path = TEMPLATE
    parameters: dict[str, str] = field(default_factory=dict)
    context: StackContext = field(default_factory=StackContext)
    physical: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.doc: dict[str, Any] = cfn_yaml.load(str(self.path))
        self.resources: dict[str, Any] = self.doc["Resources"]

    # -- registry of what the local stack created ------------------------------------------------
    def register(self, logical_id: str, ref: str, **attributes: str) -> None:
        self.physical[logical_id] = {"Ref": ref, **attributes}

    def of_type(self, resource_type: str) -> list[str]:
        return [k for k, v in self.resources.items() if v["Type"] == resource_type and self.included(k)]

    def included(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def properties(self, logical_id: str) -> dict[str, Any]:
        resolved: dict[str, Any] = self.resolve(self.resources[logical_id].get("Properties", {}))
        return resolved

    # -- intrinsic functions --------------------------------------------------------------------
    def parameter(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        spec = self.doc.get("Parameters", {}).get(name)
        if spec is None:
            raise KeyError(f"unknown parameter {name}")
        return str(spec.get("Default", ""))

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": self.context.account_id,
            "AWS::Region": self.context.region,
            "AWS::StackName": self.context.stack_name,
            "AWS::Partition": self.context.partition,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.doc.get("Parameters", {}):
            return self.parameter(name)
        return self.physical[name]["Ref"]

    def get_att(self, logical_id: str, attribute: str) -> str:
        return self.physical[logical_id][attribute]

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.doc["Conditions"][name]))

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return self.ref(name)

        return _SUB.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        """``value`` with its intrinsic functions resolved; what resolves to ``AWS::NoValue`` is left
        out of its list or object, as CloudFormation leaves the property out."""
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return _NO_VALUE
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self._sub(text, variables)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Join":
                values = self.resolve(arg[1])
                # A CommaDelimitedList parameter's Ref is its text here: its items are between the commas.
                items = [v for v in values.split(",") if v] if isinstance(values, str) else values
                return str(arg[0]).join(str(v) for v in items)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            if key == "Condition":
                return self.condition(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    # -- functions --------------------------------------------------------------------------------
    def function_variables(self, logical_id: str) -> dict[str, Any]:
        """Globals' variables overlaid with the function's own, as the template writes them (unresolved)."""
        variables = dict(self.doc.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
        variables.update(self.resources[logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {}))
        return variables

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """``function_variables`` resolved: what Lambda would set."""
        return {k: str(self.resolve(v)) for k, v in self.function_variables(logical_id).items()}

    def function_handler(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Properties"]["Handler"])

    def function_setting(self, logical_id: str, name: str) -> Any:
        own = self.resources[logical_id].get("Properties", {})
        return own.get(name, self.doc.get("Globals", {}).get("Function", {}).get(name))

    def api_routes(self, logical_id: str) -> list[tuple[str, str]]:
        """(METHOD, /path/{param}) of the function's Api events."""
        events = self.resources[logical_id]["Properties"].get("Events", {})
        return [
            (e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events.values() if e["Type"] == "Api"
        ]

    def has_sqs_event(self, logical_id: str) -> bool:
        events = self.resources[logical_id].get("Properties", {}).get("Events", {})
        return any(e["Type"] == "SQS" for e in events.values())

    def sqs_event(self, logical_id: str) -> dict[str, Any]:
        events = self.resources[logical_id]["Properties"].get("Events", {})
        (sqs,) = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
        return sqs  # type: ignore[no-any-return]

    def outputs(self) -> dict[str, str]:
        """The Outputs CloudFormation would show: those whose Condition holds."""
        return {
            k: str(self.resolve(v["Value"]))
            for k, v in self.doc.get("Outputs", {}).items()
            if "Condition" not in v or self.condition(v["Condition"])
        }
