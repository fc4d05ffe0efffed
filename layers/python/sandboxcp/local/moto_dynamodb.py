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
- moto's update validator then walks the copy once per check (ten walks per update), and at every node of
  every walk asks `isinstance` against abstract classes (ABCMeta's check, in Python) whether the walk
  handles it and with which of its handlers: about 40 % of a transaction's time here (cProfile of a cell's
  outcome write). Which handler a walk uses for a node depends only on the walk's class and the node's
  class (each `_processing_map` is a literal of classes), so it is decided once per pair; each walk still
  visits the same nodes in the same order and calls the same handlers.
- Three of those ten walks only check the expression (one SET/ADD/REMOVE clause each, no overlapping
  paths, no key attribute set) and change nothing: their answer depends on the expression's text, its
  attribute names and the table's key, and counting clauses is quadratic in the actions (moto checks
  every nested sub-expression). An expression that passed them for the same names and key skips them; one
  that failed runs them again and fails the same way.

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
    _installed["walk_handlers"] = _decide_walk_handlers_once()
    _installed["checked_expressions"] = _check_expressions_once()


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


def _decide_walk_handlers_once() -> dict[tuple[type, type], Any]:
    """moto's DepthFirstTraverser walk, bottom up as moto's, with its per-node class checks kept per pair
    of (walk class, node class): the handler's class key, or None when the walk leaves the node alone."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    handlers: dict[tuple[type, type], Any] = {}
    is_node: dict[type, bool] = {}

    def handler_key(walk: Any, node_class: type) -> Any:
        pair = (type(walk), node_class)
        if pair not in handlers:  # moto's `process`: the first key of the map the node is an instance of
            handlers[pair] = next((k for k in walk._processing_map() if issubclass(node_class, k)), None)
        return handlers[pair]

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        node_class = type(node)
        known = is_node.get(node_class)
        if known is None:
            known = is_node[node_class] = isinstance(node, Node)
        if not known:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        key = handler_key(self, node_class)
        if key is not None:
            node = self._processing_map()[key](node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    _installed["moto_walk"] = DepthFirstTraverser.traverse_node_recursively  # for the tests
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively
    return handlers


def _check_expressions_once() -> dict[int, tuple[Any, set[Any]]]:
    """The text-only checks of moto's update validator, skipped for an expression (the parser's kept tree:
    one per text) that passed them with the same attribute names and table key."""
    import moto.dynamodb.parsing.validators as validators

    text_only = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )
    passed: dict[int, tuple[Any, set[Any]]] = {}  # id(tree) -> (the tree, kept alive; passed keys)
    init = validators.UpdateExpressionValidator.__init__

    def __init__(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        init(self, expression, *args, **kwargs)
        self.sandboxcp_tree = expression

    def validate(self: Any) -> Any:
        tree = self.sandboxcp_tree
        names = tuple(sorted((self.expression_attribute_names or {}).items()))
        key = (names, tuple(self.table.table_key_attrs))
        kept = passed.get(id(tree))
        skip = kept is not None and kept[0] is tree and key in kept[1]
        n = self.node_to_validate
        for processor in self.processors:
            if not (skip and isinstance(processor, text_only)):
                n = processor.traverse(n)
        if not skip and len(passed) < 1024:  # every check passed (a failed one raised)
            passed.setdefault(id(tree), (tree, set()))[1].add(key)
        return n

    _installed["moto_validate"] = validators.UpdateExpressionValidator.validate  # for the tests
    validators.UpdateExpressionValidator.__init__ = __init__  # type: ignore[method-assign]
    validators.UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]
    return passed


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
