"""Cloud side of edge control: model and rule catalogue, rollouts, commands, alerts, audit."""
