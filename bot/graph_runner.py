"""Runs a trained model's prediction graph node after node, without dask's scheduler.

For every message Rasa 3.6 runs the NLU graph and, for each predicted action,
the dialogue graph through ``DaskGraphRunner``: dask rebuilds the task graph,
orders it and schedules each node, about a millisecond per message spent on
bookkeeping for graphs of a dozen nodes that run one after another anyway. This
runner works out the order once per set of targets and calls the same graph
nodes with the same inputs, so results, hooks and errors are the same.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import ExecutionContext, GraphNodeHook, GraphSchema
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.storage.storage import ModelStorage

# Node name -> the names its inputs come from, in the order the node takes them.
_Plan = List[Tuple[Text, Tuple[Text, ...]]]


class SequentialGraphRunner(DaskGraphRunner):
    """DaskGraphRunner's results, computed in a fixed topological order."""

    def __init__(
        self,
        graph_schema: GraphSchema,
        model_storage: ModelStorage,
        execution_context: ExecutionContext,
        hooks: Optional[List[GraphNodeHook]] = None,
    ) -> None:
        """Instantiates the graph's nodes, as DaskGraphRunner does."""
        super().__init__(graph_schema, model_storage, execution_context, hooks)
        self._plans: Dict[Tuple[Text, ...], _Plan] = {}

    def run(
        self,
        inputs: Optional[Dict[Text, Any]] = None,
        targets: Optional[List[Text]] = None,
    ) -> Dict[Text, Any]:
        """Runs the nodes the targets need, each once, parents first (see GraphRunner.run)."""
        run_targets = list(targets) if targets else self._graph_schema.target_names
        plan = self._plan(tuple(run_targets))
        results: Dict[Text, Any] = {}
        for name, value in (inputs or {}).items():
            if isinstance(value, str) and value in self._graph_schema.nodes:
                raise GraphRunError(
                    f"Input value '{value}' clashes with a node name. Make sure that none of the input "
                    f"names passed to the `run` method are the same as node names in the graph schema."
                )
            # Dask hands an input on as the literal pair; graph nodes expect that.
            results[name] = (name, value)
        try:
            for node_name, needs in plan:
                # A need that is neither a node nor an input reaches the node as is, as with dask.
                arguments = [results.get(need, need) for need in needs]
                results[node_name] = self._instantiated_nodes[node_name](*arguments)
        except RuntimeError as error:
            raise GraphRunError("Error running runner.") from error
        return dict(results[target] if target in results else (target, target) for target in run_targets)

    def _plan(self, targets: Tuple[Text, ...]) -> _Plan:
        plan = self._plans.get(targets)
        if plan is None:
            schema = self._graph_schema.minimal_graph_schema(list(targets))
            plan = []
            done: set = set()

            def visit(node_name: Text) -> None:
                if node_name in done or node_name not in schema.nodes:
                    return
                done.add(node_name)
                needs = tuple(schema.nodes[node_name].needs.values())
                for need in needs:
                    visit(need)
                plan.append((node_name, needs))

            for target in targets:
                visit(target)
            self._plans[targets] = plan
        return plan
