"""What one GraphQL operation may ask for, checked before anything executes (docs/graphql.md).

- depth: at most MAX_DEPTH levels of selections (Strawberry's QueryDepthLimiter);
- aliases: at most MAX_ALIASES in the document (MaxAliasesLimiter): the cheap way to ask for one
  expensive field many times;
- size: at most MAX_TOKENS tokens in the document (MaxTokensLimiter, at parse time): bounds the
  number of fields, arguments and fragments;
- lists: a `limit` argument, written in the query or given as a variable, is at most MAX_LIST;
- cost: each selected field counts once per item of every enclosing list: as many as its `limit`,
  else its default limit, else LIST_GUESS for a list without one (providers, models, keys); the
  operation's total is at most MAX_COST.
The last two read the operation's variables, so they run as the validation step begins: a
refusal there skips validation and execution and answers a GraphQL error naming the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter, SchemaExtension

MAX_DEPTH = 6
MAX_ALIASES = 10
MAX_TOKENS = 1000
MAX_LIST = 500
LIST_GUESS = 20
MAX_COST = 20_000


class TooCostly(Exception):
    pass


def operation_cost(selections: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode],
                   variables: Mapping[str, Any], list_sizes: Mapping[str, int], visiting: tuple[str, ...] = ()) -> int:
    """The operation's cost (above); raises TooCostly for a `limit` over MAX_LIST. Recursive
    fragments are counted once on their path (validation refuses them anyway)."""
    if selections is None:
        return 0
    total = 0
    for node in selections.selections:
        if isinstance(node, FieldNode):
            limit = _limit(node, variables)
            items = limit if limit is not None else list_sizes.get(node.name.value, 1)
            total += items * (1 + operation_cost(node.selection_set, fragments, variables, list_sizes, visiting))
        elif isinstance(node, InlineFragmentNode):
            total += operation_cost(node.selection_set, fragments, variables, list_sizes, visiting)
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in visiting:
                total += operation_cost(fragment.selection_set, fragments, variables, list_sizes, (*visiting, name))
        if total > MAX_COST:
            raise TooCostly(f"the query costs more than {MAX_COST} (each field once per list item it is under): "
                            "ask for fewer fields or smaller limits")
    return total


def _limit(node: FieldNode, variables: Mapping[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value != "limit":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            found: Any = int(value.value)
        elif isinstance(value, VariableNode):
            found = variables.get(value.name.value)  # None: the field's default
        else:
            return None  # not an integer: validation says so
        if isinstance(found, int) and found > MAX_LIST:
            raise TooCostly(f"{node.name.value}: limit {found} is over the most a list may hold ({MAX_LIST})")
        return found if isinstance(found, int) and found >= 0 else None
    return None


class CostLimiter(SchemaExtension):
    """The list and cost limits, before validation and execution."""

    def __init__(self, list_sizes: Mapping[str, int]) -> None:
        self.list_sizes = list_sizes

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            try:
                for definition in document.definitions:
                    if isinstance(definition, OperationDefinitionNode):
                        operation_cost(definition.selection_set, fragments, context.variables or {},
                                       self.list_sizes)
            except TooCostly as e:
                context.pre_execution_errors = [GraphQLError(str(e))]
        yield


def extensions(list_sizes: Mapping[str, int]) -> list[Callable[[], SchemaExtension]]:
    """Factories: Strawberry makes each operation its own instances."""
    return [partial(MaxTokensLimiter, max_token_count=MAX_TOKENS), partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
            partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES), partial(CostLimiter, list_sizes)]
