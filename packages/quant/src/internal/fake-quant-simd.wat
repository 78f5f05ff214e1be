;; Fake quantization and its gradient as WebAssembly SIMD loops over tfjs' wasm heap (the module
;; imports the backend's own memory; pointers are byte offsets of float32 data).
;; Source of fake-quant-simd.ts: `node packages/quant/scripts/build-wasm.mjs` assembles it with
;; wabt, and test/fused-fake-quant.test.ts checks that the committed bytes match this file.
;;
;; Both loops take four lanes at a time down `rows` rows `stride` bytes apart, lane j with scale
;; s_j: per channel (channels on the last axis) that is four channels down the rows (stride = 4·C
;; bytes); per tensor it is the whole tensor in rows of four (stride 16, the same scale in every
;; lane). Arithmetic is that of the typed-array kernels in fused-fake-quant.ts: float32
;; r = x / s, clamp to [lo, hi] = [qmin − zp, qmax − zp] (pmin/pmax: NaN and −0 pass through like
;; the JavaScript ternaries), round half to even (f32x4.nearest), times s.
(module
  (import "env" "memory" (memory 0))

  (func (export "forward")
    (param $x i32) (param $y i32) (param $rows i32) (param $stride i32)
    (param $s0 f32) (param $s1 f32) (param $s2 f32) (param $s3 f32) (param $lo f32) (param $hi f32)
    (local $S v128) (local $LO v128) (local $HI v128) (local $end i32)
    (local.set $S (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1
      (f32x4.splat (local.get $s0)) (local.get $s1)) (local.get $s2)) (local.get $s3)))
    (local.set $LO (f32x4.splat (local.get $lo)))
    (local.set $HI (f32x4.splat (local.get $hi)))
    (local.set $end (i32.add (local.get $x) (i32.mul (local.get $rows) (local.get $stride))))
    (block $done
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (loop $next
        (v128.store (local.get $y)
          (f32x4.mul
            (f32x4.nearest
              (f32x4.pmin
                (f32x4.pmax (f32x4.div (v128.load (local.get $x)) (local.get $S)) (local.get $LO))
                (local.get $HI)))
            (local.get $S)))
        (local.set $x (i32.add (local.get $x) (local.get $stride)))
        (local.set $y (i32.add (local.get $y) (local.get $stride)))
        (br_if $next (i32.lt_u (local.get $x) (local.get $end))))))

  ;; dx = dy where qmin ≤ r + zp ≤ qmax (everywhere with ste ≠ 0), else 0. With mode 1 (LSQ) or
  ;; 2 (PACT: nothing inside) also returns, per lane, Σ dy·t with t = round(r) + zp − v inside and
  ;; clamp(round(r) + zp) − zp outside (four values), then Σ dy over the values outside (four
  ;; values); mode 0 returns zeros.
  (func (export "backward")
    (param $x i32) (param $dy i32) (param $dx i32) (param $rows i32) (param $stride i32)
    (param $s0 f32) (param $s1 f32) (param $s2 f32) (param $s3 f32)
    (param $zp f32) (param $qmin f32) (param $qmax f32) (param $ste i32) (param $mode i32)
    (result f64 f64 f64 f64 f64 f64 f64 f64)
    (local $S v128) (local $ZP v128) (local $QMIN v128) (local $QMAX v128)
    (local $PASS v128) (local $KEEP v128)
    (local $r v128) (local $v v128) (local $g v128) (local $in v128) (local $q v128) (local $p v128)
    (local $t0 v128) (local $t1 v128) (local $o0 v128) (local $o1 v128)
    (local $end i32)
    (local.set $S (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1
      (f32x4.splat (local.get $s0)) (local.get $s1)) (local.get $s2)) (local.get $s3)))
    (local.set $ZP (f32x4.splat (local.get $zp)))
    (local.set $QMIN (f32x4.splat (local.get $qmin)))
    (local.set $QMAX (f32x4.splat (local.get $qmax)))
    ;; all ones with a straight-through estimator (dx = dy everywhere)
    (local.set $PASS (i32x4.splat (i32.sub (i32.const 0) (i32.ne (local.get $ste) (i32.const 0)))))
    ;; all ones unless PACT (whose scale gradient is 0 inside the range)
    (local.set $KEEP (i32x4.splat (i32.sub (i32.const 0) (i32.ne (local.get $mode) (i32.const 2)))))
    (local.set $end (i32.add (local.get $x) (i32.mul (local.get $rows) (local.get $stride))))
    (block $done
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (loop $next
        (local.set $g (v128.load (local.get $dy)))
        (local.set $r (f32x4.div (v128.load (local.get $x)) (local.get $S)))
        (local.set $v (f32x4.add (local.get $r) (local.get $ZP)))
        (local.set $in
          (v128.and (f32x4.ge (local.get $v) (local.get $QMIN)) (f32x4.le (local.get $v) (local.get $QMAX))))
        (v128.store (local.get $dx) (v128.and (local.get $g) (v128.or (local.get $in) (local.get $PASS))))
        (if (local.get $mode)
          (then
            (local.set $q
              (f32x4.pmin
                (f32x4.pmax (f32x4.add (f32x4.nearest (local.get $r)) (local.get $ZP)) (local.get $QMIN))
                (local.get $QMAX)))
            (local.set $p
              (f32x4.mul (local.get $g)
                (v128.bitselect
                  (v128.and (f32x4.sub (local.get $q) (local.get $v)) (local.get $KEEP))
                  (f32x4.sub (local.get $q) (local.get $ZP))
                  (local.get $in))))
            (local.set $t0 (f64x2.add (local.get $t0) (f64x2.promote_low_f32x4 (local.get $p))))
            (local.set $t1 (f64x2.add (local.get $t1) (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $p) (local.get $p)))))
            (local.set $p (v128.andnot (local.get $g) (local.get $in)))
            (local.set $o0 (f64x2.add (local.get $o0) (f64x2.promote_low_f32x4 (local.get $p))))
            (local.set $o1 (f64x2.add (local.get $o1) (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $p) (local.get $p)))))))
        (local.set $x (i32.add (local.get $x) (local.get $stride)))
        (local.set $dy (i32.add (local.get $dy) (local.get $stride)))
        (local.set $dx (i32.add (local.get $dx) (local.get $stride)))
        (br_if $next (i32.lt_u (local.get $x) (local.get $end)))))
    (f64x2.extract_lane 0 (local.get $t0)) (f64x2.extract_lane 1 (local.get $t0))
    (f64x2.extract_lane 0 (local.get $t1)) (f64x2.extract_lane 1 (local.get $t1))
    (f64x2.extract_lane 0 (local.get $o0)) (f64x2.extract_lane 1 (local.get $o0))
    (f64x2.extract_lane 0 (local.get $o1)) (f64x2.extract_lane 1 (local.get $o1))))
