"""Manufacturing: product definitions (``models``, ``defaults``, ``service`` at the top, shared
by the sub-packages), ``processing`` (steps, lots, batch record, materials and equipment),
``storage`` (LN2 tanks) and ``deviations``."""
