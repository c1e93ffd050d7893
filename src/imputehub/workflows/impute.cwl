#!/usr/bin/env cwl-runner
# imputehub's imputation as a CWL tool, for GA4GH WES servers: the hub's own engine pipeline
# (`imputehub engine run`), so the `imputehub` command (this package) must be on the PATH of
# the server's CWL runner, with bcftools, tabix, bgzip, java and Beagle 5.4.
cwlVersion: v1.2
class: CommandLineTool
label: imputehub genotype imputation (Beagle 5.4)
baseCommand: [imputehub, engine, run]
arguments:
  - prefix: --out
    valueFrom: results
inputs:
  inputs:
    type: File[]
    doc: The study's VCFs, bgzipped and sorted.
    inputBinding:
      position: 1
  panel:
    type: File
    doc: The phased reference panel, with its tabix index beside it.
    secondaryFiles:
      - pattern: .tbi
        required: false
    inputBinding:
      prefix: --panel
  mode:
    type: string?
    doc: imputation (the default) or qc_only.
    inputBinding:
      prefix: --mode
  r2_filter:
    type: float?
    doc: Drop imputed sites whose estimated R² is below this.
    inputBinding:
      prefix: --r2-filter
  heap_mb:
    type: int?
    inputBinding:
      prefix: --heap-mb
  threads:
    type: int?
    inputBinding:
      prefix: --threads
outputs:
  results:
    type: Directory
    doc: Dose VCFs and their indexes, info files, the QC report and statistics.
    outputBinding:
      glob: results
