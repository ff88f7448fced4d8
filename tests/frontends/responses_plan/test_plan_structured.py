"""llama-stack's test_structured_output.py (JSON schema text formats), replayed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import TEXT_MODEL


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties),
            "additionalProperties": False}  # fmt: skip


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
CASES: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "test_json_schema_string_types": (
        "PersonProfile", _object({"name": STR, "occupation": STR, "city": STR}),
        "Generate a profile for Tom, a 30-year-old software engineer in Raleigh", {"name": "Tom", "city": "Raleigh"}),
    "test_json_schema_integer_types": (
        "PersonAge", _object({"name": STR, "age": INT}), "Generate a profile for Bob who is 25 years old",
        {"name": "Bob", "age": 25}),
    "test_json_schema_float_types": (
        "ProductPrice", _object({"product_name": STR, "price": NUM}),
        "Generate product info for a laptop priced at $999.99", {"price": 999.99}),
    "test_json_schema_boolean_types": (
        "UserStatus", _object({"username": STR, "is_active": BOOL, "email_verified": BOOL}),
        "Generate a user profile for Alice who is active with verified email",
        {"username": "Alice", "is_active": True, "email_verified": True}),
    "test_json_schema_array_of_strings": (
        "PersonSkills", _object({"name": STR, "skills": {"type": "array", "items": STR}}),
        "Generate a profile for a developer named Charlie with skills: Python, JavaScript, and Docker",
        {"name": "Charlie", "skills": ["Python", "JavaScript", "Docker"]}),
    "test_json_schema_array_of_integers": (
        "TestScores", _object({"student_name": STR, "scores": {"type": "array", "items": INT}}),
        "Generate test scores for student Dana with three test scores: 85, 92, and 78",
        {"student_name": "Dana", "scores": [85, 92, 78]}),
    "test_json_schema_nested_objects": (
        "EmployeeRecord", _object({"employee": _object({"name": STR, "employee_id": INT}),
                                   "department": _object({"name": STR, "manager": STR})}),
        "Generate an employee record for Susan (ID 1001) in Engineering department managed by Frank",
        {"employee": {"name": "Susan", "employee_id": 1001},
         "department": {"name": "Engineering", "manager": "Frank"}}),
    "test_json_schema_array_of_objects": (
        "TeamMembers", _object({"team_name": STR,
                                "members": {"type": "array", "items": _object({"name": STR, "role": STR})}}),
        "Generate a team called Engineering with two members: Alice as lead and Bob as developer",
        {"team_name": "Engineering"}),
    "test_json_schema_mixed_types_structures": (
        "ComplexProfile", _object({"name": STR, "age": INT, "salary": NUM, "is_active": BOOL,
                                   "skills": {"type": "array", "items": STR},
                                   "address": _object({"street": STR, "city": STR, "zipcode": INT})}),
        "Generate a profile for Grace, age 35, salary $120000, active status true, with skills Python and SQL, living "
        "at 123 Main St in Raleigh, zipcode 27601", {"name": "Grace", "age": 35, "is_active": True}),
}  # fmt: skip


@pytest.mark.parametrize("test", CASES)
def test_json_schema(compat_for: Callable[[str], Any], test: str) -> None:
    name, schema, prompt, expected = CASES[test]
    client = compat_for(f"test_structured_output.py::{test}[{{client}}-txt=openai/gpt-4o]")
    response = client.responses.create(model=TEXT_MODEL, input=prompt,
                                       text={"format": {"type": "json_schema", "name": name, "schema": schema}})
    text = "".join(p.text for o in response.output if o.type == "message" for p in o.content)
    data = json.loads(text)
    assert set(data) == set(schema["properties"])
    for key, wanted in expected.items():  # a model may say "Charlie Developer" for "Charlie"
        assert wanted in data[key] if isinstance(wanted, str) else data[key] == wanted, (key, data[key])
