"""Group labels of one dimension for robust training (SubpopBench, DFR, GroupDRO)."""
