"""What each config key does, in one line: the descriptions of ``docs/config.md``.

Kept beside ``orchestrator/config.py`` rather than in it, so that the Config models stay short;
a key whose ``Field`` has a description of its own is not repeated here. ``configdoc`` renders
them, and a test checks that every key of the Config is described exactly once."""

KEY_HELP: dict[str, str] = {
    "seed": (
        "base random seed of the test hold-out, fold splits, weight initialisation, batch order "
        "and the search's samplers"
    ),
    "data.source": (
        "the data: builtin:NAME (digits, breast_cancer, wine, iris, diabetes), a CSV/TSV, Parquet"
        " or NPZ file, or an image folder"
    ),
    "data.target": (
        "name of the target column of a CSV/TSV or Parquet table (required there); a CSV/TSV "
        "without it is read as a UCR time-series file"
    ),
    "data.test_source": (
        "separate test data read like source; when set, no test part is held out of source and "
        "split.test_size is unused"
    ),
    "data.modality": (
        "how the data is read: table, image or sequence; auto decides from the data, a format's "
        "own declaration and model.family"
    ),
    "data.task": (
        "classification or regression; auto picks classification for text, booleans or a few "
        "integer values, else regression"
    ),
    "data.group_column": (
        "table column of group ids (not a feature): splits keep each group on one side; "
        "split.strategy group needs it; tables only"
    ),
    "data.scaling": (
        "feature scaling fitted on training rows: standard, minmax or robust (per image channel, "
        "per sequence feature), or none"
    ),
    "data.encoding": (
        "how categorical table columns become numbers: onehot (unknown categories give zeros) or "
        "ordinal (unknown categories give -1)"
    ),
    "data.cleaning.numeric_impute": (
        "how missing numbers in table columns are filled: median, mean or fill_value; drop "
        "removes rows with a missing number before the split"
    ),
    "data.cleaning.fill_value": "value that fills missing numbers when numeric_impute is constant",
    "data.cleaning.categorical_impute": (
        "how missing categories in table columns are filled: the most frequent one, a 'missing' "
        "category, or drop removes such rows"
    ),
    "data.cleaning.drop_duplicates": (
        "drop rows whose features and target repeat an earlier row (any modality), before the split"
    ),
    "data.cleaning.fix_errors": (
        "read mostly-numeric text columns as numbers ('1,234', ' 3.5 ') and unify category and "
        "class-label spellings that differ in case or spaces"
    ),
    "data.cleaning.drop_constant": (
        "drop table columns with at most one distinct value (a missing value counts as one), "
        "unless every column is constant"
    ),
    "data.augment.hflip": "when augmenting, mirror each image left-right with probability 0.5",
    "data.augment.vflip": "when augmenting, mirror each image top-bottom with probability 0.5",
    "split.test_size": (
        "fraction of the data held out as the test set (by group when data.group_column is set); "
        "unused with data.test_source"
    ),
    "split.folds": (
        "number of cross-validation folds; 1 makes a single train/validation split of val_size "
        "(then test_size + val_size must be below 1)"
    ),
    "split.strategy": (
        "how folds are made: auto (group with data.group_column, else stratified for "
        "classification, kfold for regression), or one named"
    ),
    "model.family": (
        "network family; auto picks fnn for tables, cnn for images and gru for sequences; the "
        "family must fit the data's modality"
    ),
    "model.activation": (
        "activation of the hidden layers of every family (also the transformer's feed-forward "
        "layers)"
    ),
    "model.hidden_sizes": (
        "fnn: widths of the hidden layers, in order; each must be a positive integer"
    ),
    "model.head_sizes": (
        "every family but fnn: widths of the dense head's hidden layers after the feature "
        "extractor; each a positive integer; null: the family's default ([128]; none for "
        "resnet1d and inception, whose pooled features go straight to the output layer)"
    ),
    "model.channels": (
        "cnn / cnn1d: output channels of each conv block; resnet1d: of each residual block; in "
        "order, one block per entry, each a positive integer; null: the family's default "
        "([32, 64]; resnet1d [32, 64, 64])"
    ),
    "model.depth": "inception: number of inception modules (a residual shortcut every 3)",
    "model.filters": "inception: filters of each of a module's 4 branches",
    "model.max_kernel": (
        "inception: the longest kernel (the others are a half and a quarter of it), capped at "
        "the training length"
    ),
    "model.kernel_size": "cnn / cnn1d: kernel size of every convolution",
    "model.stride": "cnn / cnn1d: stride of every convolution",
    "model.padding": (
        "cnn / cnn1d: same pads each convolution by kernel_size // 2; valid does not pad"
    ),
    "model.pool": "cnn / cnn1d: pooling of size 2 after each conv block (max or avg), or none",
    "model.hidden_size": "rnn / lstm / gru: size of the recurrent hidden state (per direction)",
    "model.num_layers": (
        "rnn / lstm / gru: number of stacked recurrent layers; transformer: number of encoder "
        "layers"
    ),
    "model.bidirectional": "rnn / lstm / gru: run the recurrent layers in both directions",
    "model.d_model": (
        "transformer: width of the encoder (the inputs are projected to it); must be divisible by"
        " num_heads"
    ),
    "model.num_heads": "transformer: attention heads per encoder layer; must divide d_model",
    "model.dim_feedforward": (
        "transformer: width of the feed-forward layer inside each encoder layer"
    ),
    "model.positional": (
        "transformer: positional encoding added to the projected inputs: sinusoidal, learned, or "
        "none"
    ),
    "training.loss": (
        "loss: auto (cross_entropy for classification, mse for regression), cross_entropy or bce "
        "(binary targets only), mse or huber"
    ),
    "training.optimizer.name": "optimizer: adam, adamw, sgd or rmsprop",
    "training.optimizer.lr": "learning rate (the peak rate under scheduler onecycle)",
    "training.optimizer.weight_decay": "weight decay (L2 penalty; decoupled under adamw)",
    "training.optimizer.momentum": "momentum of sgd; unused by the other optimizers",
    "training.optimizer.nesterov": "Nesterov momentum for sgd; needs momentum above 0",
    "training.scheduler.name": (
        "learning-rate schedule: none, step, cosine (over training.epochs), plateau, or onecycle "
        "(stepped every batch); auto: cosine for sequences, none otherwise"
    ),
    "training.scheduler.step_size": (
        "step: epochs between two multiplications of the learning rate by gamma"
    ),
    "training.scheduler.gamma": (
        "step: factor the learning rate is multiplied by every step_size epochs"
    ),
    "training.scheduler.patience": (
        "plateau: epochs without improvement of the early-stopping loss (else the training loss) "
        "before the rate is cut"
    ),
    "training.scheduler.factor": (
        "plateau: factor the learning rate is multiplied by when it is cut"
    ),
    "training.scheduler.min_lr": "cosine and plateau: lowest learning rate",
    "training.early_stopping.enabled": (
        "stop a fold's training when its early-stopping loss (split.inner_val_size) stops "
        "improving; off when that size is 0"
    ),
    "training.early_stopping.min_delta": (
        "how much the early-stopping loss must fall to count as an improvement"
    ),
    "training.early_stopping.restore_best": (
        "at the end of training, restore the weights of the epoch with the lowest early-stopping "
        "loss"
    ),
    "training.grad_clip": (
        "clip the gradients' total norm to this value every batch; null: no clipping"
    ),
    "training.device": "device to train on: auto (cuda when available, else cpu), cpu or cuda",
    "training.num_threads": (
        "torch threads for training; null: torch's default, or search.cpus_per_trial in a search "
        "trial"
    ),
    "training.checkpoint_dir": (
        "folder where checkpoint.pt (the training state) is written after every epoch; null: none"
        " written; keeps folds from fusing"
    ),
    "training.fuse_folds": (
        "train the k folds as one stacked model: auto for fnn, on for fnn and cnn, off never; "
        "other families always train fold by fold"
    ),
    "search.algorithm": (
        "how points of search.space are chosen: grid (every point once), random, or bayes "
        "(Optuna, see sampler)"
    ),
    "search.num_samples": (
        "number of trials for random and bayes; grid runs each point once and ignores it"
    ),
    "search.max_concurrent": (
        "most trials that run at once; null: the cluster's CPUs divided by cpus_per_trial"
    ),
    "search.metric": (
        "validation metric the search optimises and the best trial is picked by; null: "
        "val_accuracy (classification) or val_r2"
    ),
    "search.mode": (
        "whether metric is minimised or maximised; null: min for loss, log_loss, mse, rmse and "
        "mae, else max"
    ),
    "search.scheduler": (
        "trial scheduler: fifo (no early termination), asha, hyperband or median (stop trials "
        "that fall behind)"
    ),
    "search.grace_period": "asha and median: epochs a trial runs before it may be stopped",
    "search.reduction_factor": "asha and hyperband: rate at which trials are cut at each rung",
    "search.sampler": "bayes: Optuna sampler, tpe or gp (Gaussian process)",
    "search.cpus_per_trial": (
        "CPUs Ray reserves for each trial; also the trial's torch threads unless "
        "training.num_threads is set"
    ),
    "search.gpus_per_trial": "GPUs (fractions allowed) Ray reserves for each trial",
    "search.max_failures": (
        "retries of a failed trial; above 0, every epoch is checkpointed and a retry resumes from"
        " the last one"
    ),
    "tracking.enabled": "log runs, metrics and the refit model to MLflow and register the model",
    "tracking.tracking_uri": (
        "MLflow tracking URI; null: MLFLOW_TRACKING_URI, else sqlite ./mlflow.db"
    ),
    "tracking.experiment": (
        "MLflow experiment name; null: the search's name (train: automl-train); also names a "
        "search's Ray folder"
    ),
    "tracking.registered_model": (
        "registry name of the refit model; null: the experiment's name with non-alphanumerics "
        "turned into '-'"
    ),
}
