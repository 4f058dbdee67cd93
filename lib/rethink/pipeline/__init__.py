"""What the Snakemake rules run (Snakemake imports these modules whenever it parses the Snakefile, once per job, so
the heavy libraries, torch and numpy, load inside the functions that need them): data.py builds the world's files,
notebooks.py executes a notebook into its report, snakemake.py runs Snakemake after a killed run."""
