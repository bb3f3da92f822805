"""Hydra search-path plugin: makes this project's config groups composable from any Hydra app.

Hydra discovers every module under the ``hydra_plugins`` namespace package. This one appends
``pkg://dbn_experiment.conf`` (the ``conf/`` tree shipped inside the wheel) to the search path, so another
application can write ``defaults: [model: dbn_paper, train: cd1]`` without copying our YAML.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DbnComplexNetworksSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="dbn-complex-networks", path="pkg://dbn_experiment.conf")
