"""The paper's reference numbers, each with its table and row (He et al. 2015, arXiv:1512.03385)."""

# Table 6: CIFAR-10 test error (%), residual nets with option A shortcuts.
# ResNet-110's 6.43 is the best of 5 runs; the paper also gives mean +- std 6.61 +- 0.16.
TABLE6_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
TABLE6_RESNET110_MEAN_STD = (6.61, 0.16)
# Table 6, "# params" column, in millions.
TABLE6_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}

# Table 2: ImageNet top-1 error (%, 10-crop testing), plain and residual 18/34.
TABLE2_TOP1 = {("plain", 18): 27.94, ("plain", 34): 28.54, ("residual", 18): 27.88, ("residual", 34): 25.03}

# Table 3: ResNet-34 on ImageNet validation, top-1 / top-5 error (%, 10-crop).
TABLE3_TOP1_TOP5 = {"plain": (28.54, 10.02), "A": (25.03, 7.76), "B": (24.52, 7.46), "C": (24.19, 7.40)}

# Fig. 6's axes (CIFAR-10): iterations in units of 1e4 up to 6.4, error in % up to 20.
FIG6_XLIM = (0, 6.4)
FIG6_YLIM = (0, 20)

# Fig. 4's axes (ImageNet): iterations in units of 1e4 up to 50, error in % from 20 to 60.
FIG4_XLIM = (0, 50)
FIG4_YLIM = (20, 60)
