"""moto's DynamoDB responses without its per-value shape walk, and its action lookup done once per class.

- moto 5 serializes every response through botocore's output shapes: for each attribute of each item it
  walks the `AttributeValue` structure's ten members, asking an attribute picker for each (key aliases,
  path bookkeeping). For the sessions' and executions' items that was 5-10 ms of every GetItem, Query and
  UpdateItem here, more than half of each call, on every request path of the local stack (py-spy;
  cProfile of GetItem + UpdateItem: 57 %). An `AttributeValue` that holds only strings, numbers, sets of
  them, booleans, nulls, maps and lists of such is written as it is: exactly what moto's walk yields
  for it (strings through `str`, the rest unchanged). Anything else (binary values, which moto
  base64-encodes, or a shape this does not know) goes through moto's own walk.
- moto looks up the action's method on its handler class with `inspect.getmembers` at every request
  (about 1 ms for DynamoDB's handler). A class's methods are fixed once it is defined, so the names are
  listed once per class.
- moto parses every UpdateExpression twice per call (to validate the request, then to apply it) and every
  ConditionExpression with a regex per token and six passes over the tokens: with the request's
  validation and the transaction's, about a third of the local stack's CPU for a code-context cell
  (py-spy). An update expression's tree depends on its text alone, is only read by the request's checks
  and is deep-copied by moto's validator before it is changed: one per text. A condition's tree depends
  on its text and attribute names, and holds the attribute values only in its leaves (immutable tuples):
  one per (text, names, value placeholders), whose value leaves are bound to each call's values again
  before moto builds the call's condition from it; the lexer's tokens are kept per text as well.
- moto's update validator deep-copies the expression's tree before binding it (a tenth of the CPU for a
  cell): `copy.deepcopy` walks it object by object in Python. A pickle round trip makes the same copy
  (both rebuild each object through its `__reduce_ex__`) about three times faster; whatever cannot be
  pickled is still deep-copied.

Both leave what moto stores and decides alone; only how a response is written changes.
"""

from __future__ import annotations

import copy
import functools
import pickle
from collections import deque
from typing import Any

_installed: dict[str, Any] = {}
_SCALARS = frozenset({"S", "N"})
_SETS = frozenset({"SS", "NS"})
_FLAGS = frozenset({"NULL", "BOOL"})


def install() -> None:
    """Idempotent; for processes that serve DynamoDB from moto (the local stack, in-process)."""
    import moto.core.responses as responses
    from moto.core.serialize import BaseJSONSerializer

    if _installed:
        return
    walk = BaseJSONSerializer._serialize_type_structure

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue":
            plain = plain_attribute_value(value)
            if plain is not None:
                serialized[self.get_serialized_name(shape, key)] = plain
                return
        walk(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure  # type: ignore[method-assign]
    _installed["walk"] = walk
    _installed["method_names"] = responses.method_names_from_class = functools.lru_cache(maxsize=256)(
        responses.method_names_from_class
    )
    _installed["update_expressions"] = _parse_update_expressions_once()
    _installed["condition_tokens"] = _lex_conditions_once()
    _installed["condition_trees"] = _parse_conditions_once()
    _installed["tree_copy"] = _copy_trees_by_pickle()


def _parse_conditions_once() -> dict[Any, Any]:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parse = ConditionExpressionParser.parse
    trees: dict[Any, Any] = {}

    def _tree(self: Any) -> Any:
        """moto's `parse` up to the syntax tree (its own steps, in its order)."""
        nodes = self._lex_condition_expression()
        nodes = self._parse_paths(nodes)  # binds the names and the values into the leaves
        nodes = self._apply_functions(nodes)
        nodes = self._apply_comparator(nodes)
        nodes = self._apply_in(nodes)
        nodes = self._apply_between(nodes)
        nodes = self._apply_parens_and_booleans(nodes)
        node = nodes[0]
        self._assert_no_redundant_parentheses(node)
        return node

    def _bind_values(self: Any, node: Any) -> Any:
        if node.kind == ConditionExpressionParser.Kind.EXPRESSION_ATTRIBUTE_VALUE:
            return node._replace(value=self._lookup_expression_attribute_value(node.text))
        if not node.children:
            return node
        return node._replace(children=[_bind_values(self, child) for child in node.children])

    def cached_parse(self: Any) -> Any:
        if not self.condition_expression:
            return parse(self)
        names = self.expression_attribute_names or {}
        key = (
            self.condition_expression,
            tuple(sorted(names.items())),
            tuple(sorted(self.expression_attribute_values or {})),
        )
        tree = trees.get(key)
        if tree is None:
            node = _tree(self)  # raises on a bad expression: nothing is kept then
            if len(trees) < 1024:
                trees[key] = node
        else:
            node = _bind_values(self, tree)
        # The rest of moto's `parse`, on this call's tree.
        self.expr_attr_names_found.extend(self._find_literals(node))
        self.expr_attr_values_found.extend(self._find_expr_attr_values(node))
        return self._make_op_condition(node)

    ConditionExpressionParser.parse = cached_parse  # type: ignore[method-assign]
    _installed["moto_condition_parse"] = parse  # for the tests' side-by-side check
    return trees


def _copy_trees_by_pickle() -> Any:
    import moto.dynamodb.parsing.validators as validators

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if memo is None:
            try:
                return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
            except (pickle.PicklingError, TypeError, AttributeError):
                pass
        return copy.deepcopy(value, memo)

    validators.deepcopy = deepcopy  # type: ignore[assignment]
    return deepcopy


def _parse_update_expressions_once() -> Any:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    make = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)
    UpdateExpressionParser.make = staticmethod(make)
    return make


def _lex_conditions_once() -> dict[str, tuple[Any, ...]]:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression
    tokens: dict[str, tuple[Any, ...]] = {}

    def _lex_condition_expression(self: Any) -> deque[Any]:
        lexed = tokens.get(self.condition_expression)
        if lexed is None:
            lexed = tuple(lex(self))  # raises on a malformed expression: nothing is kept then
            if len(tokens) < 1024:
                tokens[self.condition_expression] = lexed
        return deque(lexed)  # the parser consumes it

    ConditionExpressionParser._lex_condition_expression = _lex_condition_expression  # type: ignore[method-assign]
    return tokens


def plain_attribute_value(value: Any) -> dict[str, Any] | None:
    """`value` (an AttributeValue as moto holds it) as moto's serializer would write it, or None when
    it holds anything this does not write itself."""
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for kind, inner in value.items():
        if inner is None:
            continue  # moto's walk leaves out members that are None
        if kind in _SCALARS:
            if not isinstance(inner, str):
                return None
            out[kind] = inner
        elif kind in _SETS:
            if not isinstance(inner, list) or not all(isinstance(x, str) for x in inner):
                return None
            out[kind] = list(inner)
        elif kind in _FLAGS:
            if not isinstance(inner, bool):
                return None
            out[kind] = inner
        elif kind == "M":
            if not isinstance(inner, dict):
                return None
            members = {}
            for name, member in inner.items():
                plain = plain_attribute_value(member)
                if plain is None:
                    return None
                members[name] = plain
            out[kind] = members
        elif kind == "L":
            if not isinstance(inner, list):
                return None
            items = []
            for member in inner:
                plain = plain_attribute_value(member)
                if plain is None:
                    return None
                items.append(plain)
            out[kind] = items
        else:
            return None  # B, BS or a member this module does not know: moto's walk decides
    return out
