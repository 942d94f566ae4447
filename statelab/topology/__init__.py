"""How servers are put together: a load balancer, a cluster behind it, a shared cache in front."""
