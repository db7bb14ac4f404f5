"""cluster: the archive's anonymous faces -> groups of one person each (no names).

In: the faces ``facelens.archive`` indexed (templates, quality) and the user's corrections.
Out: clusters of face ids, the faces left unclustered (too poor to judge, or alone), the
faces of enrolled people. A similarity graph (``graph``), average linkage over it weighted by
quality and bound by the corrections (``agglomerate``), and the archive-facing part
(``people``): grouping, corrections, naming as enrolment with consent.
"""

from facelens.cluster.agglomerate import agglomerate
from facelens.cluster.graph import similarity_edges
from facelens.cluster.people import LINKAGE, Cluster, ClusterConfig, Clusterer, Clustering

__all__ = [
    "LINKAGE",
    "Cluster",
    "ClusterConfig",
    "Clusterer",
    "Clustering",
    "agglomerate",
    "similarity_edges",
]
