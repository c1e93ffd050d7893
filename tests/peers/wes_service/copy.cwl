# A tiny workflow for the wes-service peer: waits `sleep` seconds, then joins the job's input
# files into one output. Enough to prove the hub submits to, follows and cancels at the
# server without running a whole imputation.
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments:
  - valueFrom: 'sleep $(inputs.sleep); cat "$@" > combined.vcf.gz'
  - valueFrom: sh
inputs:
  inputs:
    type: File[]
    inputBinding: {position: 1}
  sleep:
    type: int
    default: 0
outputs:
  combined:
    type: File
    outputBinding: {glob: combined.vcf.gz}
