# CLVTools' static-covariate Pareto/NBD on apparel (gender, channel on both processes) with its
# default L-BFGS-B settings, then with the tolerances at their tightest (factr 1, pgtol 0) and
# restarted from that estimate: how far CLVTools' own estimate moves when its optimiser is run
# to convergence. Usage: Rscript clvtools_static_converged.R
# Result and its reading: docs/covariates.md ("Accuracy and speed").
script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
source(file.path(dirname(normalizePath(script)), "apparel_data.R"))
fit <- pnbd(static, verbose = FALSE)
show_fit("pnbd static default (L-BFGS-B)", fit)
tight <- list(method = "L-BFGS-B", control = list(factr = 1, pgtol = 0, maxit = 100000,
                                                  kkt = FALSE, starttests = FALSE))
fit2 <- pnbd(static, verbose = FALSE, optimx.args = tight)
show_fit("pnbd static, L-BFGS-B factr 1 pgtol 0", fit2)
co <- coef(fit2)
fit3 <- pnbd(static, verbose = FALSE, optimx.args = tight,
             start.params.model = co[c("r", "alpha", "s", "beta")],
             start.params.life = setNames(co[paste0("life.", static_names)], static_names),
             start.params.trans = setNames(co[paste0("trans.", static_names)], static_names))
show_fit("pnbd static, restarted from that", fit3)
for (model in c("ggomnbd", "bgnbd")) {
  fitter <- get(model)
  show_fit(sprintf("%s static default", model), fitter(static, verbose = FALSE))
  show_fit(sprintf("%s static, L-BFGS-B factr 1 pgtol 0", model),
       fitter(static, verbose = FALSE, optimx.args = tight))
}
