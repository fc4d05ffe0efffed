"""moto_dynamodb: DynamoDB responses written without moto's per-value shape walk are the bytes' meaning
moto's walk gives, for every kind of value, and moto still serves a real table through it."""

from __future__ import annotations

import json
import random
from typing import Any

import boto3
from moto import mock_aws
from moto.core.serialize import JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model

from sandboxcp.local import moto_dynamodb


def _value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kinds = ["S", "N", "SS", "NS", "BOOL", "NULL", "B", "BS"] + (["M", "L"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": rng.choice(["", "text", "ünï", "x" * 50])}
    if kind == "N":
        return {"N": str(rng.randint(-(10**6), 10**6))}
    if kind == "SS":
        return {"SS": [f"s{i}" for i in range(rng.randint(1, 3))]}
    if kind == "NS":
        return {"NS": [str(i) for i in range(rng.randint(1, 3))]}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "B":
        return {"B": "AAEC"}
    if kind == "BS":
        return {"BS": ["AAEC", "AwQ="]}
    if kind == "M":
        return {"M": {f"k{i}": _value(rng, depth + 1) for i in range(rng.randint(0, 4))}}
    return {"L": [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]}


def _serialize(cls: type[JSONSerializer], operation: str, result: dict[str, Any]) -> Any:
    model = get_service_model("dynamodb").operation_model(operation)
    out = cls(operation_model=model, value_picker=XFormedAttributePicker(response_transformers={}))
    return json.loads(out.serialize(result)["body"])


def _client_with_table(name: str) -> Any:
    """A DynamoDB client (inside mock_aws) and a table `name` keyed by the string `pk`."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def test_every_kind_of_value_is_written_as_moto_writes_it() -> None:
    moto_dynamodb.install()
    moto_dynamodb.install()  # idempotent

    class MotosWalk(JSONSerializer):
        _serialize_type_structure = moto_dynamodb._installed["walk"]

    rng = random.Random(14)
    for _ in range(300):
        item = {f"a{i}": _value(rng) for i in range(rng.randint(1, 8))}
        query = {"Items": [item, {"pk": {"S": "x"}}], "Count": 2, "ScannedCount": 2}
        assert _serialize(JSONSerializer, "GetItem", {"Item": item}) == _serialize(
            MotosWalk, "GetItem", {"Item": item}
        )
        assert _serialize(JSONSerializer, "Query", query) == _serialize(MotosWalk, "Query", query)


def test_values_it_does_not_write_itself_are_left_to_moto() -> None:
    assert moto_dynamodb.plain_attribute_value({"S": "x", "M": {"k": {"N": "1"}}}) == {
        "S": "x",
        "M": {"k": {"N": "1"}},
    }
    for value in ({"B": "AAEC"}, {"M": {"k": {"BS": ["AA=="]}}}, {"S": 5}, {"L": [{"X": "?"}]}, "S"):
        assert moto_dynamodb.plain_attribute_value(value) is None


def test_a_table_served_through_it_returns_what_was_written() -> None:
    moto_dynamodb.install()
    with mock_aws():
        client = _client_with_table("t")
        item = {
            "pk": {"S": "p"},
            "n": {"N": "1.5"},
            "b": {"B": b"\x00\x01"},
            "m": {"M": {"l": {"L": [{"S": "a"}, {"BOOL": False}, {"NULL": True}, {"SS": ["x", "y"]}]}}},
        }
        client.put_item(TableName="t", Item=item)
        assert client.get_item(TableName="t", Key={"pk": {"S": "p"}})["Item"] == item
        updated = client.update_item(
            TableName="t",
            Key={"pk": {"S": "p"}},
            UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        assert updated == {**item, "n": {"N": "2.5"}}


def test_expressions_parsed_once_still_bind_each_calls_values() -> None:
    """The same UpdateExpression and ConditionExpression text with different values: each call is
    decided on its own values (only the text's parse is kept)."""
    moto_dynamodb.install()
    with mock_aws():
        client = _client_with_table("c")
        client.put_item(TableName="c", Item={"pk": {"S": "p"}, "state": {"S": "creating"}, "n": {"N": "0"}})

        def move(source: str, target: str) -> bool:
            try:
                client.update_item(
                    TableName="c",
                    Key={"pk": {"S": "p"}},
                    UpdateExpression="SET #s = :to, n = n + :one",
                    ConditionExpression="#s = :from AND attribute_exists(pk)",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={
                        ":to": {"S": target},
                        ":from": {"S": source},
                        ":one": {"N": "1"},
                    },
                )
            except client.exceptions.ConditionalCheckFailedException:
                return False
            return True

        assert move("creating", "running") is True
        assert move("creating", "running") is False  # same text, the item moved on
        assert move("running", "terminated") is True
        item = client.get_item(TableName="c", Key={"pk": {"S": "p"}})["Item"]
        assert item["state"] == {"S": "terminated"} and item["n"] == {"N": "2"}
        text = "#s = :from AND attribute_exists(pk)"
        assert text in moto_dynamodb._installed["condition_tokens"]
        assert moto_dynamodb._installed["update_expressions"].cache_info().hits >= 2


def test_update_trees_are_copied_whole_and_unshared() -> None:
    """moto's validator binds a copy of the cached tree: the copy equals the tree and shares none of its
    nodes, so binding one call's values cannot leak into the next call's."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    moto_dynamodb.install()
    tree = UpdateExpressionParser.make("SET #a = :v, n = n + :one REMOVE gone")
    copied = moto_dynamodb._installed["tree_copy"](tree)
    assert _shape(copied) == _shape(tree)
    originals = {id(node) for node in _nodes(tree)}
    assert originals and not originals & {id(node) for node in _nodes(copied)}


def _nodes(node: Any) -> list[Any]:
    if not hasattr(node, "__dict__"):
        return []  # leaf values are immutable (and may be interned): not nodes to share
    found = [node]
    for child in getattr(node, "children", None) or []:
        found += _nodes(child)
    return found


def _shape(node: Any) -> Any:
    """A node's class, plain fields and children's shapes: what a copy must reproduce."""
    if not hasattr(node, "__dict__"):
        return node  # a leaf value (a name, a token string)
    fields = sorted((k, v) for k, v in vars(node).items() if isinstance(v, (str, int, type(None))))
    return type(node).__name__, fields, [_shape(child) for child in getattr(node, "children", None) or []]


CONDITIONS = [
    "#s = :a AND attribute_exists(pk)",
    "#s IN (:a, :b) OR size(#l) > :n",
    "NOT (#s <> :a) AND begins_with(#p, :pre)",
    "#n BETWEEN :lo AND :hi",
    "attribute_not_exists(pk) OR (#n < :lo AND contains(#l, :a))",
    "attribute_type(#s, :t) AND #n >= :n",
]
NAMES = {"#s": "state", "#l": "tags", "#n": "n", "#p": "path"}
VALUE_SETS = [
    {":a": {"S": "running"}, ":b": {"S": "creating"}, ":n": {"N": "1"}, ":pre": {"S": "/w"},
     ":lo": {"N": "0"}, ":hi": {"N": "5"}, ":t": {"S": "S"}},
    {":a": {"S": "creating"}, ":b": {"S": "failed"}, ":n": {"N": "3"}, ":pre": {"S": "/x"},
     ":lo": {"N": "4"}, ":hi": {"N": "9"}, ":t": {"S": "N"}},
]  # fmt: skip


def test_a_condition_parsed_once_decides_like_motos_own_parse_for_every_calls_values() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    moto_dynamodb.install()
    motos_parse = moto_dynamodb._installed["moto_condition_parse"]
    items = [
        Item(DynamoType({"S": "p"}), None, {"pk": {"S": "p"}, "state": {"S": "running"}, "n": {"N": "2"},
             "tags": {"SS": ["running", "x"]}, "path": {"S": "/w/a"}}),
        Item(DynamoType({"S": "q"}), None, {"pk": {"S": "q"}, "state": {"S": "failed"}, "n": {"N": "7"},
             "tags": {"SS": ["creating"]}, "path": {"S": "/x"}}),
    ]  # fmt: skip
    decided = 0
    for _round in range(2):  # the second round answers from the kept trees
        for text in CONDITIONS:
            for values in VALUE_SETS:
                cached = ConditionExpressionParser(text, NAMES, values)
                fresh = ConditionExpressionParser(text, NAMES, values)
                ours, motos = cached.parse(), motos_parse(fresh)
                assert cached.expr_attr_values_found == fresh.expr_attr_values_found
                assert cached.expr_attr_names_found == fresh.expr_attr_names_found
                for item in items:
                    assert ours.expr(item) == motos.expr(item), (text, values, item.attrs)
                    decided += ours.expr(item)
    assert 0 < decided < 2 * len(CONDITIONS) * len(VALUE_SETS) * len(items)  # both outcomes were seen
    assert (CONDITIONS[0], tuple(sorted(NAMES.items())), tuple(sorted(VALUE_SETS[0]))) in (
        moto_dynamodb._installed["condition_trees"]
    )


UPDATES: list[tuple[str, dict[str, str]]] = [  # (expression, attribute names other than UPDATE_NAMES)
    ("SET #n = :one, tags = :tags, doc = :doc, l = :l", {}),
    ("SET #n = #n + :one, doc.#k = :v REMOVE gone", {}),
    ("SET l = list_append(l, :l), fresh = if_not_exists(fresh, :one) ADD cnt :one, tags :more", {}),
    ("SET l[0] = :v, doc.nested.deep = :v", {}),  # a path whose parent does not exist: refused
    ("DELETE tags :more SET #n = #n - :one", {}),
    ("SET #n = :one, #n = :v", {}),  # overlapping paths: refused
    ("SET pk = :v", {}),  # the key: refused
    ("SET a = :v SET b = :v", {}),  # two SET clauses: refused
    ("ADD doc :one", {}),  # ADD to a map: refused
    ("SET #n = :missing", {}),  # an undefined value: refused
    ("REMOVE l[0], doc.#k", {}),
    ("SET #n = :v", {}),
    ("SET #n = :v", {"#n": "pk"}),  # the same text, passed before, now names the key: refused
]
UPDATE_NAMES = {"#n": "n", "#k": "key"}
UPDATE_VALUES = {
    ":one": {"N": "1"},
    ":v": {"S": "value"},
    ":tags": {"SS": ["a", "b"]},
    ":more": {"SS": ["b", "c"]},
    ":doc": {"M": {"key": {"S": "k"}}},
    ":l": {"L": [{"N": "1"}, {"S": "two"}]},
}


def _apply_updates(client: Any, table: str) -> list[Any]:
    """Each of UPDATES in turn on one item, twice over: after each, the item or the error moto answered
    with."""
    client.put_item(TableName=table, Item={"pk": {"S": "p"}, "gone": {"S": "x"}})
    seen: list[Any] = []
    for expression, other_names in UPDATES + UPDATES:
        names = {k: v for k, v in {**UPDATE_NAMES, **other_names}.items() if k in expression}
        values = {k: v for k, v in UPDATE_VALUES.items() if k in expression}
        try:
            client.update_item(
                TableName=table,
                Key={"pk": {"S": "p"}},
                UpdateExpression=expression,
                **({"ExpressionAttributeNames": names} if names else {}),
                **({"ExpressionAttributeValues": values} if values else {}),
            )
            seen.append(client.get_item(TableName=table, Key={"pk": {"S": "p"}})["Item"])
        except client.exceptions.ClientError as err:
            seen.append(err.response["Error"])
    return seen


def test_update_validation_with_kept_decisions_changes_items_as_motos_own_does() -> None:
    """The same updates (valid and refused), each twice, through the kept per-class decisions and checks
    and through moto's own walk and validator leave the same items and answer the same errors."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    moto_dynamodb.install()
    ours = DepthFirstTraverser.traverse_node_recursively, UpdateExpressionValidator.validate
    motos = moto_dynamodb._installed["moto_walk"], moto_dynamodb._installed["moto_validate"]
    assert ours[0] is not motos[0] and ours[1] is not motos[1]
    with mock_aws():
        ours_seen = _apply_updates(_client_with_table("ours"), "ours")
        DepthFirstTraverser.traverse_node_recursively, UpdateExpressionValidator.validate = motos
        try:
            motos_seen = _apply_updates(_client_with_table("motos"), "motos")
        finally:
            DepthFirstTraverser.traverse_node_recursively, UpdateExpressionValidator.validate = ours
    assert ours_seen == motos_seen
    errors = [s for s in ours_seen if "Code" in s]
    assert 10 <= len(errors) < 2 * len(UPDATES), ours_seen  # both kinds of answer were compared
    assert moto_dynamodb._installed["walk_handlers"]  # decisions were kept
    kept = [keys for _tree, keys in moto_dynamodb._installed["checked_expressions"].values()]
    assert any(keys for keys in kept)  # and passed checks (the second round skipped them)
