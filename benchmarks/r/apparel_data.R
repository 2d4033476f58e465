# CLVTools' apparel data as the scripts in this folder fit it: 104-week calibration (to
# 2006-12-31), weekly; `apparel` without covariates, `static` with gender and channel on both
# processes, `dynamic` with high season, gender and channel (apparelDynCov) on both.
# Sourced by clvtools_apparel.R, clvtools_static_converged.R and clvtools_dyncov_restarts.R.
suppressPackageStartupMessages(library(CLVTools))
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
dynamic_names <- c("High.Season", "Gender", "Channel")
with_dynamic_covariates <- function() {
  SetDynamicCovariates(apparel, data.cov.life = apparelDynCov, data.cov.trans = apparelDynCov,
                       names.cov.life = dynamic_names, names.cov.trans = dynamic_names,
                       name.id = "Id", name.date = "Cov.Date")
}
# prints a fit's log-likelihood and estimates on one line
show_fit <- function(label, fit, digits = 7) {
  co <- coef(fit)
  cat(sprintf("%s\tLL %.6f\t%s\n", label, as.numeric(logLik(fit)),
              paste(sprintf(paste0("%s=%.", digits, "g"), names(co), co), collapse = " ")))
}
