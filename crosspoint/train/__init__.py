"""CrossPoint training: pretraining (`pretrain`), the class head (`head`), part segmentation (`partseg`)."""
