"""The flow passes the year's data to tasks wrapped in ``Q`` (prefect's ``quote``)
so Prefect does not walk it; ``Q`` must survive pickling (the Dask runner)."""

import pickle

import cloudpickle
from prefect.utilities.annotations import quote
from prefect.utilities.collections import visit_collection

from kaohe.flows.year_end import Q


def test_q_is_a_prefect_quote_and_keeps_its_value_across_pickling():
    data = {"units": [{"id": "QX01", "items": list(range(5))}]}
    q = Q(data)
    assert isinstance(q, quote)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        back = loads(dumps(q))
        assert type(back) is Q
        assert back.unwrap() == data  # prefect's own quote would give (data,) here
    assert quote(data).unwrap() == data
    assert pickle.loads(pickle.dumps(quote(data))).unwrap() == (data,)  # the upstream bug Q works around


def test_prefect_resolves_q_to_the_object_itself_without_visiting_it():
    seen = []

    class Big:
        pass

    obj = {"a": [Big(), Big()]}

    def visit(x, context=None):
        seen.append(x)
        if context is not None and isinstance(context.get("annotation"), quote):
            from prefect.utilities.collections import StopVisiting

            raise StopVisiting
        return x

    out = visit_collection({"p": Q(obj)}, visit_fn=visit, return_data=True, remove_annotations=True, context={}, max_depth=-1)
    assert out["p"] is obj
    assert not any(isinstance(x, Big) for x in seen)
