# CLVTools' static-covariate Pareto/NBD on apparel (gender, channel on both processes) with its
# default L-BFGS-B settings, then with the tolerances at their tightest (factr 1, pgtol 0) and
# restarted from that estimate: how far CLVTools' own estimate moves when its optimiser is run
# to convergence. Usage: Rscript clvtools_static_converged.R
# Result and its reading: docs/covariates.md ("Accuracy and speed").
suppressPackageStartupMessages(library(CLVTools))
data("apparelTrans", package = "CLVTools")
data("apparelStaticCov", package = "CLVTools")
apparel <- clvdata(apparelTrans, date.format = "ymd", time.unit = "week",
                   estimation.split = 104, name.id = "Id", name.date = "Date",
                   name.price = "Price")
nm <- c("Gender", "Channel")
static <- SetStaticCovariates(apparel, data.cov.life = apparelStaticCov,
                              data.cov.trans = apparelStaticCov,
                              names.cov.life = nm, names.cov.trans = nm, name.id = "Id")
show <- function(label, fit) {
  co <- coef(fit)
  cat(sprintf("%s\tLL %.6f\t%s\n", label, as.numeric(logLik(fit)),
              paste(sprintf("%s=%.7g", names(co), co), collapse = " ")))
}
fit <- pnbd(static, verbose = FALSE)
show("pnbd static default (L-BFGS-B)", fit)
tight <- list(method = "L-BFGS-B", control = list(factr = 1, pgtol = 0, maxit = 100000,
                                                  kkt = FALSE, starttests = FALSE))
fit2 <- pnbd(static, verbose = FALSE, optimx.args = tight)
show("pnbd static, L-BFGS-B factr 1 pgtol 0", fit2)
co <- coef(fit2)
fit3 <- pnbd(static, verbose = FALSE, optimx.args = tight,
             start.params.model = co[c("r", "alpha", "s", "beta")],
             start.params.life = setNames(co[paste0("life.", nm)], nm),
             start.params.trans = setNames(co[paste0("trans.", nm)], nm))
show("pnbd static, restarted from that", fit3)
for (model in c("ggomnbd", "bgnbd")) {
  fitter <- get(model)
  show(sprintf("%s static default", model), fitter(static, verbose = FALSE))
  show(sprintf("%s static, L-BFGS-B factr 1 pgtol 0", model),
       fitter(static, verbose = FALSE, optimx.args = tight))
}
