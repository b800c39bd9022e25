"""Evaluation on frozen features (linear SVM, few-shot) and part-segmentation mIoU."""
