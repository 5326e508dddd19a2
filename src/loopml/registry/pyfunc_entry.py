"""MLflow "models from code" entry point: MLflow runs this file to build the pyfunc model.

Logging the model from code (rather than a pickled Python object) means MLflow stores no
cloudpickle of ours; the loopml package itself travels with the model via ``code_paths``.
"""

from mlflow.models import set_model

from loopml.registry.pyfunc_model import LoopmlPyfunc

set_model(LoopmlPyfunc())
