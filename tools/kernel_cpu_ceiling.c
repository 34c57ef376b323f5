// Kernel compute ceiling by thread CPU time (one thread, matrix resident in cache), independent of
// machine load. Build and run from the repository root:
//   clang -O2 -ISources/CInferenceKitQuantKernels/include tools/kernel_cpu_ceiling.c -o /tmp/kcc -lm
//   /tmp/kcc ISA TOKENS BITS     (ISA 2 = avx512-vnni, 1 = avx2, 0 = scalar; BITS 4 = Q4_0-like, 8 = Q8_0-like)
#include "../Sources/CInferenceKitQuantKernels/kernels.c"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double cpu_us(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
int main(int argc,char**argv){
  int isa = argc>1?atoi(argv[1]):2; ikq_set_isa(isa);
  int64_t N=4096,K=4096,T=argc>2?atoi(argv[2]):1; int bits=argc>3?atoi(argv[3]):4;
  int64_t G=N/8, nb=K/32;
  ikq_packed_matrix w={0}; w.rows=N; w.cols=K; w.code_bits=bits; w.weight_kind= bits==8?IKQ_WEIGHT_SIGNED8:IKQ_WEIGHT_OFFSET8; w.scale_shift=0;
  size_t cb = G*nb*(bits==8?256:128);
  uint8_t*codes=aligned_alloc(64,cb); for(size_t i=0;i<cb;i++)codes[i]=rand();
  uint16_t*sc=malloc(G*nb*8*2); for(int64_t i=0;i<G*nb*8;i++)sc[i]=0x3C00;
  w.codes=codes; w.scales=sc;
  float*x=malloc(T*K*4); for(int64_t i=0;i<T*K;i++)x[i]=(rand()%200-100)*0.01f;
  int8_t*q=malloc(T*K); float*d=malloc(T*nb*4),*s=malloc(T*nb*4); float*out=malloc(T*N*4);
  int reps = T==1?50:2;
  double best=1e30;
  for(int r=0;r<reps;r++){ double t0=cpu_us(); ikq_quantize_activations(x,T,K,q,d,s); ikq_matmul(&w,q,d,s,T,out,N,0,G); double t=cpu_us()-t0; if(t<best)best=t; }
  double bytes = (double)N*K*(bits==8?8.5:4.5)/8;
  printf("isa %d bits %d T %ld: %.0f us cpu (1 thread), %.1f GB/s-equiv, %.1f GOP/s\n", ikq_active_isa(), bits, (long)T, best, bytes/best/1e3, 2.0*N*K*T/best/1e3);
}
