# Does CLVTools' time-varying Pareto/NBD estimate on apparel move when its optimiser is allowed
# to continue? Fits the default (Nelder-Mead, reltol 1e-8, as CLVTools' reference run and
# REFERENCE.md), then restarts Nelder-Mead three times from the previous estimate with reltol
# 1e-12, printing the log-likelihood and the estimates after each (about 10 minutes a restart
# on a 2-core machine). Usage: Rscript clvtools_dyncov_restarts.R
# Result and its reading: docs/time_varying.md ("Accuracy and speed on the apparel data").
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(dirname(normalizePath(script)), "apparel_data.R"))
dynamic <- with_dynamic_covariates()
show <- function(label, fit, seconds) show_fit(sprintf("%s\t%.1f s", label, seconds), fit, 5)
t0 <- proc.time()[["elapsed"]]
fit <- pnbd(dynamic, verbose = FALSE)
show("default (Nelder-Mead, reltol 1e-8)", fit, proc.time()[["elapsed"]] - t0)
for (i in 1:3) {
  co <- coef(fit)
  model <- co[c("r", "alpha", "s", "beta")]
  life <- co[paste0("life.", dynamic_names)]; names(life) <- dynamic_names
  trans <- co[paste0("trans.", dynamic_names)]; names(trans) <- dynamic_names
  t0 <- proc.time()[["elapsed"]]
  fit <- pnbd(dynamic, start.params.model = model, start.params.life = life,
              start.params.trans = trans, verbose = FALSE,
              optimx.args = list(method = "Nelder-Mead", itnmax = 50000,
                                 control = list(reltol = 1e-12, kkt = FALSE,
                                                starttests = FALSE)))
  show(sprintf("restart %d from the previous estimate (Nelder-Mead, reltol 1e-12)", i), fit,
       proc.time()[["elapsed"]] - t0)
}
