# CLVTools fits on its own apparel data (the data clvmodels' tests/data holds), timed in R.
# Run by benchmarks/support.py's clvtools_timings(); prints one tab-separated line per fit:
#   CLVTOOLS <label> <median elapsed s> <min s> <max s> <runs> <log-likelihood> <median CPU s>
# Usage: Rscript clvtools_apparel.R <runs> <labels...>
#   labels: pnbd, bgnbd, ggomnbd (no covariates), pnbd_static, bgnbd_static, ggomnbd_static
#   (gender + channel on both processes), pnbd_dyncov (high season + gender + channel)
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(dirname(normalizePath(script)), "apparel_data.R"))
args <- commandArgs(trailingOnly = TRUE)
runs <- as.integer(args[1])
labels <- args[-1]
fits <- list(
  pnbd = function() pnbd(apparel, verbose = FALSE),
  bgnbd = function() bgnbd(apparel, verbose = FALSE),
  ggomnbd = function() ggomnbd(apparel, verbose = FALSE),
  pnbd_static = function() pnbd(static, verbose = FALSE),
  bgnbd_static = function() bgnbd(static, verbose = FALSE),
  ggomnbd_static = function() ggomnbd(static, verbose = FALSE),
  pnbd_dyncov = function() pnbd(with_dynamic_covariates(), verbose = FALSE)
)
for (label in labels) {
  seconds <- numeric(runs)
  cpu <- numeric(runs)
  for (i in seq_len(runs)) {
    timing <- system.time(model <- fits[[label]]())
    seconds[i] <- timing[["elapsed"]]
    cpu[i] <- timing[["user.self"]] + timing[["sys.self"]]
  }
  cat(sprintf("CLVTOOLS\t%s\t%.4f\t%.4f\t%.4f\t%d\t%.4f\t%.4f\n", label, median(seconds),
              min(seconds), max(seconds), runs, as.numeric(logLik(model)), median(cpu)))
}
