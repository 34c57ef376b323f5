#ifndef CINFERENCEKIT_BLAS_SHIM_H
#define CINFERENCEKIT_BLAS_SHIM_H
#include <cblas.h>
#endif
