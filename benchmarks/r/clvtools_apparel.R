# CLVTools fits on its own apparel data (the data clvmodels' tests/data holds), timed in R.
# Run by benchmarks/support.py's clvtools_timings(); prints one tab-separated line per fit:
#   CLVTOOLS <label> <median elapsed s> <min s> <max s> <runs> <log-likelihood> <median CPU s>
# Usage: Rscript clvtools_apparel.R <runs> <labels...>
#   labels: pnbd, bgnbd, ggomnbd (no covariates), pnbd_static, bgnbd_static, ggomnbd_static
#   (gender + channel on both processes), pnbd_dyncov (high season + gender + channel)
suppressPackageStartupMessages(library(CLVTools))
args <- commandArgs(trailingOnly = TRUE)
runs <- as.integer(args[1])
labels <- args[-1]
data("apparelTrans", package = "CLVTools")
data("apparelStaticCov", package = "CLVTools")
data("apparelDynCov", package = "CLVTools")
apparel <- clvdata(apparelTrans, date.format = "ymd", time.unit = "week",
                   estimation.split = 104, name.id = "Id", name.date = "Date",
                   name.price = "Price")
static_names <- c("Gender", "Channel")
static <- SetStaticCovariates(apparel, data.cov.life = apparelStaticCov,
                              data.cov.trans = apparelStaticCov,
                              names.cov.life = static_names, names.cov.trans = static_names,
                              name.id = "Id")
fits <- list(
  pnbd = function() pnbd(apparel, verbose = FALSE),
  bgnbd = function() bgnbd(apparel, verbose = FALSE),
  ggomnbd = function() ggomnbd(apparel, verbose = FALSE),
  pnbd_static = function() pnbd(static, verbose = FALSE),
  bgnbd_static = function() bgnbd(static, verbose = FALSE),
  ggomnbd_static = function() ggomnbd(static, verbose = FALSE),
  pnbd_dyncov = function() {
    dynamic_names <- c("High.Season", "Gender", "Channel")
    dynamic <- SetDynamicCovariates(apparel, data.cov.life = apparelDynCov,
                                    data.cov.trans = apparelDynCov,
                                    names.cov.life = dynamic_names,
                                    names.cov.trans = dynamic_names,
                                    name.id = "Id", name.date = "Cov.Date")
    pnbd(dynamic, verbose = FALSE)
  }
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
