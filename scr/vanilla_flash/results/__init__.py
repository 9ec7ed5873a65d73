"""Results: where they come from and the one way they are written (`provenance`), their figures
(`plots`), the plots and tables drawn from results files (`report`, `tables`), and the speed
experiment's tables, plot and loss curves (`speed_tables`, `loss_curves`)."""
