"""Features over a built graph: Jacobian, Hessian, check, suites, batch, the grad_fn graph."""
